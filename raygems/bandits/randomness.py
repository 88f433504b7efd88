"""Counter-based randomness: every random number is a hash of (repetition key, stream, counters).

Why not one `numpy.random.Generator`? A replay advances R repetitions in lockstep, and a vectorised draw
from one generator mixes the repetitions' streams: repetition 7 of a 100-repetition replay would then differ
from the same repetition run alone, and the live search (R = 1) could not reproduce a replay. Hashing
(key, stream, counters) gives each repetition its own stream, whatever R is, with no state to carry or
checkpoint: the same (key, stream, counters) always gives the same number.

The hash is the splitmix64 output function, a strong 64-bit mixer, applied to the repetition key plus a
linear combination of the counters with large odd constants. Compiled code (the TTTS sampler, the replay's
loops) hashes one value at a time with `mix64_scalar`, the compiled twin of `mix64`.
"""
from __future__ import annotations

import numpy as np

from raygems.compiled import jit

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
# Large odd constants that weight each counter position (first four are from well-known hash functions).
_COUNTER_WEIGHTS = tuple(
    np.uint64(c)
    for c in (0xD6E8FEB86659FD93, 0xA0761D6478BD642F, 0xE7037ED1A0B428DB, 0x8EBC6AF09C88C6E3,
              0x589965CC75374CC3, 0x1D8E4E27C47D124F)
)
_S30, _S27, _S31, _S11 = (np.uint64(s) for s in (30, 27, 31, 11))
_TO_UNIT = 1.0 / float(1 << 53)

# Named streams, so that different uses of randomness never share numbers.
STREAM_TIEBREAK = 1      # jitter that breaks ties in eliminations and argmax decisions
STREAM_SHARED_ORDER = 2  # the shared query permutation of correlated sampling
STREAM_ARM_ORDER = 3     # per-arm query permutations of independent sampling
STREAM_FAST_REWARD = 4   # the replay's fast path for independent pulls
STREAM_PRIORITY = 5      # fixed per-arm priorities (argmax ties in index policies)
STREAM_CHOICE = 6        # uniform choices (random selection)
STREAM_POSTERIOR = 7     # Thompson sampling


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's output function on uint64 values (returns a new array)."""
    x = np.array(x, dtype=np.uint64, copy=True)
    if x.ndim == 0:
        return _mix_inplace(x.reshape(1))[0]
    return _mix_inplace(x)


@jit
def mix64_scalar(x):
    """`mix64` of one uint64 (the same operations as `_mix_inplace`), for compiled code."""
    x = x ^ (x >> _S30)
    x = x * _MIX1
    x = x ^ (x >> _S27)
    x = x * _MIX2
    x = x ^ (x >> _S31)
    return x


def _mix_inplace(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x ^= x >> _S30
        x *= _MIX1
        x ^= x >> _S27
        x *= _MIX2
        x ^= x >> _S31
    return x


def repetition_keys(seed: int, reps: int, first: int = 0) -> np.ndarray:
    """64-bit keys of repetitions `first .. first+reps-1` of a replay seeded with `seed`.

    Repetition r's key depends only on (seed, r): `repetition_keys(s, 100)[7] == repetition_keys(s, 1, first=7)[0]`.
    Keys come from `numpy.random.SeedSequence(seed, spawn_key=(r,))`, i.e. `SeedSequence(seed).spawn(R)[r]`.
    """
    if reps < 1:
        raise ValueError(f"reps must be at least 1, got {reps}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    keys = [
        np.random.SeedSequence(seed, spawn_key=(r,)).generate_state(1, dtype=np.uint64)[0]
        for r in range(first, first + reps)
    ]
    return np.asarray(keys, dtype=np.uint64)


def hash_bits(keys: np.ndarray, stream: int, *counters, outer: bool = True) -> np.ndarray:
    """uint64 hash of (key, stream, counters...).

    outer=True: result shape is `keys.shape + broadcast(counters).shape` (every key with every counter).
    outer=False: keys and counters broadcast against each other elementwise (e.g. keys[:, None] with a
    (R, K) counter array whose rows belong to different repetitions).
    """
    keys = np.asarray(keys, dtype=np.uint64)
    if len(counters) > len(_COUNTER_WEIGHTS):
        raise ValueError(f"at most {len(_COUNTER_WEIGHTS)} counters, got {len(counters)}")
    with np.errstate(over="ignore"):
        offset = _stream_offset(stream)
        for weight, counter in zip(_COUNTER_WEIGHTS, counters):
            offset = offset + _as_uint64(counter) * weight
        if outer and keys.ndim:
            keys = keys.reshape(keys.shape + (1,) * np.ndim(offset))
        mixed = keys + offset
        return _mix_inplace(mixed) if isinstance(mixed, np.ndarray) else mix64(mixed)


_STREAM_OFFSETS: dict[int, np.uint64] = {}


def _stream_offset(stream: int) -> np.uint64:
    offset = _STREAM_OFFSETS.get(stream)
    if offset is None:
        with np.errstate(over="ignore"):
            offset = _STREAM_OFFSETS[stream] = mix64(np.uint64(stream) * _GOLDEN)[()]
    return offset


def _as_uint64(counter) -> np.ndarray:
    """Counters may be negative (reserved slots): wrap them into uint64."""
    c = np.asarray(counter)
    return c if c.dtype == np.uint64 else c.astype(np.int64).astype(np.uint64)


def uniform(keys: np.ndarray, stream: int, *counters, outer: bool = True) -> np.ndarray:
    """Uniform floats in [0, 1) from `hash_bits` (same shape rules)."""
    return (hash_bits(keys, stream, *counters, outer=outer) >> _S11).astype(np.float64) * _TO_UNIT


class QueryOrder:
    """The order in which queries are drawn, per repetition: sampling without replacement made explicit.

    * Correlated sampling: one permutation per repetition, shared by every arm (`shared`).
    * Independent sampling: one permutation per (repetition, arm) (`per_arm`).
    Both are the argsort of hashed uniforms, so they are fixed by the repetition key: a live search with the
    same key asks exactly the same query ids as a replay.
    """

    def __init__(self, keys: np.ndarray, num_queries: int):
        self.keys = np.asarray(keys, dtype=np.uint64)
        self.num_queries = int(num_queries)
        self._shared: dict[int, np.ndarray] = {}
        self._per_arm: dict[tuple[int, int], np.ndarray] = {}

    def shared_permutation(self, rep: int) -> np.ndarray:
        perm = self._shared.get(rep)
        if perm is None:
            u = uniform(self.keys[rep], STREAM_SHARED_ORDER, np.arange(self.num_queries))
            perm = np.argsort(u, kind="stable").astype(np.int64)
            self._shared[rep] = perm
        return perm

    def arm_permutation(self, rep: int, arm: int) -> np.ndarray:
        perm = self._per_arm.get((rep, arm))
        if perm is None:
            u = uniform(self.keys[rep], STREAM_ARM_ORDER, arm, np.arange(self.num_queries))
            perm = np.argsort(u, kind="stable").astype(np.int64)
            self._per_arm[(rep, arm)] = perm
        return perm

    def ids(self, rep: int, arm: int, start: int, count: int, shared: bool) -> np.ndarray:
        perm = self.shared_permutation(rep) if shared else self.arm_permutation(rep, arm)
        if start < 0 or start + count > self.num_queries:
            raise ValueError(
                f"query positions {start}..{start + count} exceed the pool of {self.num_queries} queries")
        return perm[start:start + count]
