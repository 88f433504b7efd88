"""The checkpoint cache's policy: the byte budget is never exceeded, eliminated models' files go first, and nothing
in use, just fetched for a slot, being fetched, or needed as an adapter's base is ever deleted."""
from __future__ import annotations

import pytest

from raygems.errors import UsageError
from raygems.runtime.cache import CheckpointCache, TooLarge, parse_size

MB = 10**6


def filled(tmp_path, *sizes_mb, limit_mb=10):
    cache = CheckpointCache(tmp_path, limit_mb * MB)
    for k, size in enumerate(sizes_mb):
        assert cache.admit(f"org/m{k}", size * MB, "sha") == []
        cache.completed(f"org/m{k}", size * MB)
        cache.hold(f"org/m{k}")        # a slot takes it ...
        cache.release(f"org/m{k}")     # ... and is done with it
    return cache


def test_the_budget_is_never_exceeded_and_retired_models_go_first(tmp_path):
    cache = filled(tmp_path, 3, 3, 3)                       # 9 of 10 MB, m0 least recently used
    cache.retire({"org/m1"})
    assert cache.admit("org/new", 3 * MB, "sha") == ["org/m1"]            # retired first, not the older m0
    assert cache.used_bytes <= cache.limit_bytes and cache.peak_bytes <= cache.limit_bytes
    cache.completed("org/new", 3 * MB)
    cache.hold("org/new")
    cache.release("org/new")
    assert cache.admit("org/big", 6 * MB, "sha") == ["org/m0", "org/m2"]  # then least recently used
    assert cache.peak_bytes <= cache.limit_bytes and cache.evicted == ["org/m1", "org/m0", "org/m2"]


def test_nothing_in_use_fresh_downloading_or_needed_as_a_base_is_deleted(tmp_path):
    cache = CheckpointCache(tmp_path, 10 * MB)
    cache.admit("org/held", 3 * MB, "sha")
    cache.completed("org/held", 3 * MB)
    cache.hold("org/held")                                   # a slot holds it
    cache.admit("org/fresh", 3 * MB, "sha")
    cache.completed("org/fresh", 3 * MB)                     # fetched, no slot took it yet
    cache.admit("org/downloading", 3 * MB, "sha")            # reserved, still downloading
    assert cache.admit("org/more", 3 * MB, "sha") is None    # nothing may go: wait
    cache.release("org/held")
    assert cache.admit("org/more", 3 * MB, "sha") == ["org/held"]
    # an adapter's base stays while the adapter is in the search, even retired itself... until the adapter is
    cache = CheckpointCache(tmp_path, 10 * MB)
    for model in ("org/base", "org/adapter"):
        cache.admit(model, 4 * MB, "sha")
        cache.completed(model, 4 * MB)
        cache.hold(model)
        cache.release(model)
    cache.needs_base("org/adapter", "org/base")
    cache.retire({"org/base"})
    assert cache.admit("org/other", 4 * MB, "sha") == ["org/adapter"]     # the base is kept
    cache.retire({"org/adapter"})
    assert cache.entries["org/base"].needed_by == set()


def test_a_checkpoint_larger_than_the_budget_fails_and_sizes_parse(tmp_path):
    cache = CheckpointCache(tmp_path, 10 * MB)
    with pytest.raises(TooLarge, match="more than the whole checkpoint cache"):
        cache.admit("org/huge", 11 * MB, "sha")
    assert parse_size("500GB") == 500 * 10**9 and parse_size("1.5 TB") == 1.5e12
    assert parse_size("800MiB") == 800 * 2**20 and parse_size("123") == 123
    for bad in ("lots", "-5GB", "0"):
        with pytest.raises(UsageError, match="cache limit"):
            parse_size(bad)


@pytest.mark.parametrize("seed", range(10))
def test_the_bytes_in_use_and_their_peak_follow_every_change(tmp_path, seed):
    # (kept as a running total, not summed per download: with 10,000 checkpoints the sum was most of a plan's time)
    import random

    rng = random.Random(seed)
    cache = CheckpointCache(tmp_path, 20 * MB)
    names = [f"org/m{k}" for k in range(12)]
    peak = 0
    for _ in range(300):
        name, op = rng.choice(names), rng.random()
        entry = cache.entries.get(name)
        if op < 0.35:
            try:
                cache.admit(name, rng.randint(1, 8) * MB, "sha")
            except TooLarge:
                pass
        elif op < 0.55 and entry is not None and not entry.ready:
            cache.completed(name, rng.randint(1, 8) * MB if rng.random() < 0.3 else entry.size)  # size on disk
        elif op < 0.65 and entry is not None and not entry.ready:
            cache.abandon(name)
        elif op < 0.8:
            cache.hold(name)
        elif op < 0.9:
            cache.release(name)
        elif op < 0.95:
            cache.retire({name})
        else:
            cache.register(name, rng.randint(1, 4) * MB, "sha", ready=rng.random() < 0.5)
        used = sum(e.size for e in cache.entries.values())
        peak = max(peak, used)
        assert cache.used_bytes == used and cache.peak_bytes == peak
