"""The recommended method passes the spec's sanity checks (section 12) like every other method, works through
ask/tell with R = 1 exactly as in a batched replay, and its stratified query order does what it promises."""
from __future__ import annotations

import numpy as np
import pytest

from raygems.bandits import get_method, list_methods, make_algorithm, repetition_keys
from raygems.bandits.recommended import RecommendedSearch, StratifiedQueryOrder, plan_round
from raygems.bandits.schedules import karnin_schedule
from raygems.replay import CorrectnessMatrix, MatrixEnvironment, replay
from raygems.replay.engine import run_to_end

TASKS = ("arc", "mmlu", "gsm8k")


def task_matrix(k: int, q: int, seed: int = 0, with_tasks: bool = True) -> CorrectnessMatrix:
    """Models with different task profiles: per-task accuracies drawn around a per-model level."""
    rng = np.random.default_rng(seed)
    tasks = np.array([TASKS[j % len(TASKS)] for j in range(q)])
    level = rng.uniform(0.2, 0.8, size=(k, 1))
    profile = np.clip(level + rng.normal(0, 0.1, size=(k, len(TASKS))), 0.02, 0.98)
    p = profile[:, [TASKS.index(t) for t in tasks]]
    values = (rng.random((k, q)) < p).astype(np.uint8)
    return CorrectnessMatrix(values, tuple(f"m{i}" for i in range(k)), tuple(f"q{j}" for j in range(q)),
                             tuple(tasks) if with_tasks else None)


class RecordingEnvironment(MatrixEnvironment):
    """Exact environment that remembers every (rep, arm, query ids) it served, per request."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, exact=True, **kwargs)
        self.requests: list[list[tuple[int, int, np.ndarray]]] = []

    def evaluate(self, pulls):
        self.requests.append([(int(pulls.rep[j]), int(pulls.arm[j]), pulls.query_ids(j)) for j in range(len(pulls))])
        return super().evaluate(pulls)


def run_recorded(matrix, budget, seeds, **options):
    algo = make_algorithm("recommended", matrix.num_models, matrix.num_queries, budget, seeds, **options)
    env = RecordingEnvironment(matrix.values, seeds)
    run_to_end(algo, env)
    return algo, env


def test_registered_and_the_default_of_raygems_search():
    assert "recommended" in list_methods()
    assert get_method("recommended").cls is RecommendedSearch
    from raygems.runtime.config import DEFAULT_METHOD
    from raygems.cli import build_parser
    from raygems.cli.search import config_from_args

    assert DEFAULT_METHOD == "recommended"
    args = build_parser().parse_args(["search", "--matrix", "m.npy"])
    assert config_from_args(args).method == "recommended"


@pytest.mark.parametrize("with_tasks", [True, False])
@pytest.mark.parametrize("budget", [2, 3, 10, 40])
def test_budget_never_exceeded_and_spent(budget, with_tasks):
    matrix = task_matrix(40, 240, seed=budget, with_tasks=with_tasks)
    result = replay(matrix, "recommended", budget, reps=8, seed=1)
    total = budget * matrix.num_models
    assert (result.per_rep["budget_used"] <= total).all()
    if budget >= 10:   # no pool cap binds: the whole budget but for less than one query per survivor
        assert result.summary()["budget_fraction"] >= 0.99


@pytest.mark.parametrize("with_tasks", [True, False])
def test_no_pair_evaluated_twice_and_survivors_share_their_queries(with_tasks):
    matrix = task_matrix(60, 210, seed=4, with_tasks=with_tasks)
    seeds = repetition_keys(2, 4)
    query_groups = np.asarray(matrix.tasks) if with_tasks else None
    algo, env = run_recorded(matrix, 12, seeds, query_groups=query_groups)
    assert len(env.requests) >= 4
    seen = set()
    for batch in env.requests:
        for rep in {r for r, _, _ in batch}:
            blocks = [ids for r, _, ids in batch if r == rep]
            assert all(np.array_equal(blocks[0], b) for b in blocks)     # correlated: identical query ids
        for rep, arm, ids in batch:
            for q in ids.tolist():
                assert (rep, arm, q) not in seen, f"(arm {arm}, query {q}) evaluated twice"
                seen.add((rep, arm, q))
    assert len(seen) == int(algo.budget_used.sum())


def test_one_good_arm_is_found():
    rng = np.random.default_rng(11)
    k, q = 20, 400
    values = (rng.random((k, q)) < 0.5).astype(np.uint8)
    values[17] = 1
    matrix = CorrectnessMatrix(values, tuple(f"m{i}" for i in range(k)), tuple(f"q{j}" for j in range(q)))
    result = replay(matrix, "recommended", 20, reps=100, seed=0)
    assert (result.per_rep["arm"] == 17).mean() >= 0.99


@pytest.mark.parametrize("exact", [False, True])
def test_single_repetition_matches_batched(exact):
    matrix = task_matrix(90, 300, seed=5)
    batched = replay(matrix, "recommended", 10, reps=12, seed=7, exact=exact).per_rep
    for r in (0, 5, 11):
        alone = replay(matrix, "recommended", 10, reps=1, seed=7, first_rep=r, exact=exact).per_rep
        assert alone["arm"].iloc[0] == batched["arm"].iloc[r]
        assert alone["budget_used"].iloc[0] == batched["budget_used"].iloc[r]


def test_repetitions_that_finish_early_do_not_shift_the_others():
    """Failures leave repetition 1 with few survivors, so it finishes rounds before the rest; the other
    repetitions must still make exactly the choices they make alone. Ten distinct answer rows, eight copies each: ties
    everywhere, so every tie-break draw shows in the choice."""
    distinct = task_matrix(10, 300, seed=10)
    matrix = CorrectnessMatrix(np.repeat(distinct.values, 8, axis=0), tuple(f"m{i}" for i in range(80)),
                               distinct.query_ids)
    seeds = repetition_keys(5, 6)
    failed = np.zeros((6, 80), dtype=bool)
    failed[1, 3:] = True
    batch = make_algorithm("recommended", 80, 300, 10, seeds)
    env = MatrixEnvironment(matrix.values, seeds, exact=True)
    batch.tell(env.evaluate(batch.ask()), failed=failed)
    run_to_end(batch, env)
    for r in (0, 2, 3, 4, 5):
        alone = make_algorithm("recommended", 80, 300, 10, seeds[r:r + 1])
        run_to_end(alone, MatrixEnvironment(matrix.values, seeds[r:r + 1], exact=True))
        assert batch.recommend()[r] == alone.recommend()[0], r
        assert batch.budget_used[r] == alone.budget_used[0]
    assert batch.recommend()[1] in (0, 1, 2)


def test_live_style_run_with_one_repetition_asks_the_replays_query_ids():
    """R = 1 driven by ask/tell (what the live search does) asks, round by round, the query ids that
    repetition 3 of a 10-repetition run asks."""
    matrix = task_matrix(30, 150, seed=6)
    groups = np.asarray(matrix.tasks)
    batch, batch_env = run_recorded(matrix, 10, repetition_keys(4, 10), query_groups=groups)
    alone, alone_env = run_recorded(matrix, 10, repetition_keys(4, 1, first=3), query_groups=groups)
    rounds_batch = [[(arm, ids.tolist()) for rep, arm, ids in b if rep == 3] for b in batch_env.requests]
    rounds_alone = [[(arm, ids.tolist()) for _, arm, ids in b] for b in alone_env.requests]
    assert [r for r in rounds_batch if r] == rounds_alone
    assert alone.recommend()[0] == batch.recommend()[3]


def test_state_dict_resume():
    matrix = task_matrix(50, 200, seed=8)
    seeds, groups = repetition_keys(1, 4), np.asarray(matrix.tasks)

    def fresh():
        return make_algorithm("recommended", matrix.num_models, matrix.num_queries, 12, seeds, query_groups=groups)

    reference = fresh()
    run_to_end(reference, MatrixEnvironment(matrix.values, seeds, exact=True))
    first = fresh()
    env = MatrixEnvironment(matrix.values, seeds, exact=True)
    for _ in range(3):
        first.tell(env.evaluate(first.ask()))
    resumed = fresh()
    resumed.load_state_dict(first.state_dict())
    run_to_end(resumed, env)
    assert np.array_equal(resumed.recommend(), reference.recommend())
    assert np.array_equal(resumed.budget_used, reference.budget_used)


def test_pool_cap_gives_the_exact_best_of_the_last_survivors():
    matrix = task_matrix(16, 50, seed=12)
    algo = make_algorithm("recommended", 16, 50, 40, repetition_keys(3, 10))
    run_to_end(algo, MatrixEnvironment(matrix.values, algo.seeds, exact=True))
    assert (algo.pulls <= 50).all() and (algo.budget_used <= 40 * 16).all()
    complete = algo.pulls == 50
    assert complete.any(axis=1).all()        # the budget is large enough for some arms to see the whole pool
    chosen = algo.recommend()
    for r in range(10):
        full = np.flatnonzero(complete[r])
        assert matrix.accuracies[chosen[r]] == matrix.accuracies[full].max()


def test_failed_arms_are_never_recommended():
    matrix = task_matrix(40, 200, seed=13)
    best = int(np.argmax(matrix.accuracies))
    algo = make_algorithm("recommended", 40, 200, 10)
    env = MatrixEnvironment(matrix.values, algo.seeds, exact=True)
    algo.tell(env.evaluate(algo.ask()), failed=[best])
    run_to_end(algo, env)
    assert algo.recommend()[0] != best


# --------------------------------------------------------------------------------- stratified order
def test_stratified_prefixes_hold_every_task_in_proportion():
    groups = np.array(["a"] * 500 + ["b"] * 300 + ["c"] * 200)
    order = StratifiedQueryOrder(repetition_keys(0, 3), 1000, groups)
    for rep in range(3):
        perm = order.shared_permutation(rep)
        assert np.array_equal(np.sort(perm), np.arange(1000))
        for t in (1, 7, 10, 33, 100, 501):
            counts = {g: int((groups[perm[:t]] == g).sum()) for g in "abc"}
            for g, size in (("a", 500), ("b", 300), ("c", 200)):
                assert abs(counts[g] - t * size / 1000) <= 1.0 + 1e-9, (t, counts)
    alone = StratifiedQueryOrder(repetition_keys(0, 1, first=2), 1000, groups)
    assert np.array_equal(alone.shared_permutation(0), order.shared_permutation(2))


def test_replay_engine_passes_task_labels():
    matrix = task_matrix(60, 300, seed=9)
    default = replay(matrix, "recommended", 10, reps=20, seed=2).per_rep
    explicit = replay(matrix, "recommended", 10, reps=20, seed=2,
                      options={"query_groups": np.asarray(matrix.tasks)}).per_rep
    assert np.array_equal(default["arm"], explicit["arm"])
    strata = replay(matrix, "recommended", 10, reps=20, seed=2, options={"stratify": True}).per_rep
    assert not np.array_equal(default["arm"], strata["arm"])         # opt-in: another query order
    algo = make_algorithm("recommended", 60, 300, 10, query_groups=np.asarray(matrix.tasks), stratify=True)
    assert algo.stratified and isinstance(algo.order, StratifiedQueryOrder)
    plain = make_algorithm("recommended", 60, 300, 10, query_groups=np.asarray(matrix.tasks))
    assert not plain.stratified and not isinstance(plain.order, StratifiedQueryOrder)
    with pytest.raises(ValueError, match="one label per query"):
        make_algorithm("recommended", 60, 300, 10, query_groups=np.asarray(matrix.tasks)[:10], stratify=True)
    with pytest.raises(ValueError, match="needs query_groups"):
        make_algorithm("recommended", 60, 300, 10, stratify=True)


# ------------------------------------------------------------------------------------------- planning
def test_plan_without_pool_cap_is_karnin_with_carry_over():
    k, n, q = 479, 10, 10_000
    plan = karnin_schedule(k, n, q, carry_over=True)
    survivors, budget_left, used = k, n * k, 0
    for rnd in plan:
        t = int(plan_round(np.array([survivors]), np.array([budget_left]), np.array([q - used]))[0])
        assert t == rnd.queries_per_arm
        budget_left -= t * survivors
        used += t
        survivors = rnd.keep


def test_plan_moves_budget_the_pool_cannot_take_to_earlier_rounds():
    k, n, q = 479, 100, 2500
    survivors, budget_left, used, spent = k, n * k, 0, 0
    while survivors > 1:
        t = int(plan_round(np.array([survivors]), np.array([budget_left]), np.array([q - used]))[0])
        assert t * survivors <= budget_left and used + t <= q
        budget_left -= t * survivors
        spent += t * survivors
        used += t
        survivors = -(-survivors // 2)
    karnin_spend = sum(r.queries_per_arm * a for r, a in zip(karnin_schedule(k, n, q, carry_over=True),
                                                              [k, 240, 120, 60, 30, 15, 8, 4, 2]))
    assert spent >= 0.99 * n * k > karnin_spend     # Karnin's plan loses what the last rounds cannot use
