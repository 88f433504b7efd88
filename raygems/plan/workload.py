"""The work a search configuration asks for, as a plan needs it: candidates with checkpoint sizes, the query
pool's shape, answers to simulate with, and the method with the options the driver would give it.

Nothing is downloaded. Candidates come from the same listing a search makes (`raygems.runtime.search`: hub
metadata or a local directory) and the same prior decision; checkpoint sizes from hub metadata (the files
`plan_download` would fetch: what loading needs) or from the local files; the pool from local task data when
there is any, else its shape alone (per task: `per_task` queries, the task's `max_new_tokens` as its decode
steps).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from raygems.errors import UsageError
from raygems.plan.model import Work
from raygems.plan.rewards import MatrixRewards, default_accuracies, drawn_rewards
from raygems.run_directory import RunDirectory
from raygems.runtime.config import DEFAULT_METHOD


#: Decode steps of a task raygems does not know (a matrix's own task names).
DEFAULT_STEPS = 50


@dataclass(frozen=True)
class RunFacts:
    """What a finished run says about its models, for the plan of another search of the same tree:
    per-model accuracy (answers are drawn with it), failures (model id -> stage), decode steps per task."""

    accuracies: dict[str, float] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    steps: dict[str, int] = field(default_factory=dict)


def pool_shape(config, pool=None) -> tuple[np.ndarray, list[str], np.ndarray]:
    """(task index per query, task names, decode steps per task) of the search's query pool (`pool`, when the
    caller has it already)."""
    from raygems.runtime.candidates import query_pool
    from raygems.tasks.registry import task_class_attribute
    from raygems.tasks.sources import resolve_data_dir

    if config.matrix is not None or resolve_data_dir(config.data_dir) is not None \
            or not any(_reads_the_hub(name) for name in config.tasks):
        pool = pool if pool is not None else query_pool(config)
        frame = pool.queries
        names = list(dict.fromkeys(str(t) for t in frame["task"]))
        if config.matrix is not None:     # a recorded matrix keeps no generation limits: the tasks' own
            steps = [int(task_class_attribute(name, "max_new_tokens", DEFAULT_STEPS)) for name in names]
        else:
            steps = [int(frame.loc[frame["task"] == name, "max_new_tokens"].max()) for name in names]
        tasks = np.asarray([names.index(str(t)) for t in frame["task"]], dtype=np.int64)
        return tasks, names, np.asarray(steps, dtype=np.int64)
    if config.per_task is None:
        raise UsageError("the pool's size needs the task data (--data-dir) or --per-task N: a plan downloads "
                         "nothing")
    names = []
    for task in config.tasks:
        members = _members(task)
        names.extend(members)
    steps = [int(task_class_attribute(name, "max_new_tokens", 50)) for name in names]
    tasks = np.repeat(np.arange(len(names)), config.per_task)
    return tasks, names, np.asarray(steps, dtype=np.int64)


def _members(task: str) -> list[str]:
    if task == "routerbench":
        from raygems.tasks.routerbench import ROUTERBENCH_TASKS

        return list(ROUTERBENCH_TASKS)
    return [task]


def _reads_the_hub(task: str) -> bool:
    from raygems.tasks.registry import task_class_attribute

    return any(task_class_attribute(name, "hub_repo") is not None for name in _members(task))


def checkpoint_sizes(records, hub: bool, workers: int = 8) -> tuple[list[int], dict[int, str]]:
    """Bytes each checkpoint's loading files take, and the models whose sizes cannot be known (arm -> why:
    such a model fails at fetch in a search). Hub trees: hub metadata (`plan_download`), several at once."""
    from raygems.hub.download import DownloadError, plan_download, select_checkpoint_files

    if not hub:
        sizes = []
        for record in records:
            folder = Path(record.path) if record.path else None
            if folder is None or not folder.is_dir():
                sizes.append(0)
                continue
            names = [str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()]
            sizes.append(sum((folder / name).stat().st_size for name in select_checkpoint_files(names)))
        return sizes, {}

    def size(record) -> int | str:
        try:
            return plan_download(record.model_id, record.revision).total_bytes
        except DownloadError as exc:
            return str(exc).splitlines()[0]

    with ThreadPoolExecutor(max_workers=workers) as pool:
        answers = list(pool.map(size, records))
    failed = {arm: answer for arm, answer in enumerate(answers) if isinstance(answer, str)}
    return [0 if isinstance(a, str) else int(a) for a in answers], failed


def work_for_matrix(matrix, method: str = DEFAULT_METHOD, budget: int = 50, seed: int = 0,
                    checkpoint_bytes: int = 0, chunk_size: int = 32, final_evaluation: bool = True,
                    **method_options) -> Work:
    """The `Work` of a search of a recorded correctness matrix (`raygems.replay.CorrectnessMatrix`) as if its
    models were checkpoints of `checkpoint_bytes` each on the hub (0: on local disk); decode steps from the
    matrix's task names (the registered tasks' generation limits)."""
    from raygems.runtime.candidates import popular_base_of
    from raygems.tasks.registry import task_class_attribute

    tasks = matrix.tasks or ("all",) * matrix.num_queries
    names = list(dict.fromkeys(tasks))
    steps = [int(task_class_attribute(name, "max_new_tokens", DEFAULT_STEPS)) for name in names]
    models = matrix.models
    flags = {"is_base": [False] * matrix.num_models, "downloads": [0] * matrix.num_models}
    if models is not None:
        flags = {"is_base": models["is_base"].astype(bool).tolist(), "downloads": models["downloads"].tolist()}
    from raygems.hub.types import ModelRecord

    records = [ModelRecord(model_id=m, downloads=int(d), is_base=bool(b))
               for m, d, b in zip(matrix.model_ids, flags["downloads"], flags["is_base"])]
    return Work(model_ids=list(matrix.model_ids), sizes=np.full(matrix.num_models, int(checkpoint_bytes)),
                query_tasks=np.asarray([names.index(t) for t in tasks], dtype=np.int64), task_names=names,
                steps=np.asarray(steps, dtype=np.int64), rewards=MatrixRewards(matrix.values), method=method,
                budget=budget, seed=seed, method_options=dict(method_options), chunk_size=chunk_size,
                final_evaluation=final_evaluation, popular_base=popular_base_of(records),
                downloads=flags["downloads"], is_base=flags["is_base"], fetch=checkpoint_bytes > 0)


def work_for_search(config, facts: RunFacts | None = None, checkpoint_bytes: int | None = None,
                    method: str | None = None) -> Work:
    """The `Work` of the search `config` (a `raygems.runtime.search.SearchConfig`) would run, with `method`
    instead of its own when given. `checkpoint_bytes`: every candidate that size, fetched from the hub (a
    matrix standing in for a tree not yet listed)."""
    from raygems.runtime.candidates import (apply_prior, list_tree_candidates, load_search_matrix, matrix_candidates,
                                            popular_base_of)

    facts = facts or RunFacts()
    method = method or config.method
    matrix = pool = None
    if config.matrix is not None:
        listed, pool = matrix_candidates(config)
        matrix = load_search_matrix(config.matrix, config.models)
    else:
        listed = list_tree_candidates(config)
    decision = apply_prior(config, listed)
    candidates = decision.kept
    index = {m.model_id: i for i, m in enumerate(listed)}
    tasks, names, steps = pool_shape(config, pool)
    hub = config.tree is not None and not Path(config.tree).is_dir()
    failures = {arm: "metadata" for arm, m in enumerate(candidates) if m.unreadable}
    adapter_base, base_sizes = {}, {}
    if checkpoint_bytes is not None:
        sizes, fetch = [int(checkpoint_bytes)] * len(candidates), True
    else:
        sizes, unknown = checkpoint_sizes(candidates, hub)
        failures.update({arm: "fetch" for arm in unknown})
        fetch = hub
        ids = {m.model_id for m in candidates}
        adapters = {arm: m.base_model for arm, m in enumerate(candidates) if m.kind == "adapter" and m.base_model}
        adapter_base = dict(adapters)
        outside = sorted({base for base in adapters.values() if base not in ids})
        if outside:
            from raygems.hub.types import ModelRecord

            outside_sizes, _ = checkpoint_sizes([ModelRecord(model_id=b) for b in outside], hub)
            base_sizes.update(dict(zip(outside, outside_sizes)))
        bases = set(adapters.values())
        base_sizes.update({m.model_id: size for m, size in zip(candidates, sizes) if m.model_id in bases})
    rewards = None if matrix is None else MatrixRewards(matrix.values[[index[m.model_id] for m in candidates]])
    work = Work(model_ids=[m.model_id for m in candidates], sizes=np.asarray(sizes, dtype=np.int64),
                query_tasks=tasks, task_names=names, steps=steps, rewards=rewards, method=config.method,
                budget=config.budget, seed=config.seed, chunk_size=config.chunk_size,
                final_evaluation=config.final_evaluation, exhaustive=config.exhaustive,
                popular_base=popular_base_of(candidates), downloads=[m.downloads for m in candidates],
                is_base=[m.is_base for m in candidates], fetch=fetch, adapter_base=adapter_base,
                base_sizes=base_sizes, failures=failures, arm_priority=decision.priority,
                beliefs=dict(decision.method_options))
    return for_method(_with_recorded(with_facts(work, facts), config, candidates), config,
                      method or config.method)


def _continues(config) -> bool:
    """Whether `config` is the search saved in its --out (the search there would continue, not be refused)."""
    from raygems.runtime.search import differing_settings, read_saved_search

    if not config.out or not RunDirectory(config.out).search.is_file():
        return False
    try:
        return not differing_settings(config, read_saved_search(config.out))
    except UsageError:
        return False


def _with_recorded(work: Work, config, candidates) -> Work:
    """`work` continued in its run directory (`config.out`, holding this very search): the pairs its store holds
    are paid already and answer as they were recorded, and the models it recorded as failed fail (so that the
    plan's search takes the path the recorded one took)."""
    if not _continues(config):
        return work
    arm_of = {(m.model_id, m.revision): arm for arm, m in enumerate(candidates)}
    found = recorded_pairs(config.out, arm_of, work.num_queries)
    if found is None:
        return work
    recorded, answers = found
    from raygems.runtime.store import ResultStore

    failed = ResultStore(RunDirectory(config.out).store).failures()
    in_store = {arm_of[key]: stage for key, stage in zip(zip(failed["model_id"], failed["revision"]), failed["stage"])
                if key in arm_of}
    return _answered_as_recorded(replace(work, recorded=recorded, recorded_answers=answers,
                                         failures={**work.failures, **in_store},
                                         recorded_failures=frozenset(in_store)))


def _answered_as_recorded(work: Work) -> Work:
    """`work` whose recorded pairs answer as recorded (whatever answers it drew for the others)."""
    if work.recorded is None:
        return work
    values = np.array(work.rewards.values, dtype=np.uint8)
    values[work.recorded] = work.recorded_answers[work.recorded]
    return replace(work, rewards=MatrixRewards(values))


def with_facts(work: Work, facts: RunFacts) -> Work:
    """`work` with what a run said about its models: their failures, decode steps per task, and (unless the
    answers are a recorded matrix) answers drawn with each model's measured accuracy."""
    failures = dict(work.failures)
    failures.update({arm: facts.failures[m] for arm, m in enumerate(work.model_ids) if m in facts.failures})
    steps = np.asarray([facts.steps.get(n, s) for n, s in zip(work.task_names, work.steps)], dtype=np.int64)
    rewards, drawn = work.rewards, work.drawn
    if rewards is None or drawn:
        accuracies = default_accuracies(work.num_arms, work.seed)
        known = [facts.accuracies.get(m) for m in work.model_ids]
        accuracies = np.asarray([a if k is None or not np.isfinite(k) else k for a, k in zip(accuracies, known)])
        rewards, drawn = drawn_rewards(accuracies, work.num_queries, work.seed), True
    return _answered_as_recorded(replace(work, failures=failures, steps=steps, rewards=rewards, drawn=drawn))


def for_method(work: Work, config, method: str) -> Work:
    """`work` searched by `method`, with the options the driver would give it: the inputs the method takes
    (`MethodSpec.with_inputs`: the models table, query groups, a prior's tie-break priority); the configured
    options and a prior's beliefs only for the configured method (another method runs with its defaults)."""
    from raygems.bandits import get_method
    from raygems.plan.simulate import EXHAUSTIVE

    options = {**config.algorithm_options, **work.beliefs} if method == config.method else {}
    if method != EXHAUSTIVE:
        options = get_method(method).with_inputs(
            options, downloads=work.downloads, is_base=work.is_base,
            query_groups=np.asarray(work.task_names)[work.query_tasks],    # task names, as the driver gives them
            arm_priority=None if work.arm_priority is None else np.asarray(work.arm_priority, dtype=float))
    return replace(work, method=method, method_options=options)


def recorded_pairs(out, arm_of: dict[tuple[str, str], int], num_queries: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The pairs the store in run directory `out` holds already, which a search continued there does not pay for
    again: ((arms, queries) bool, where both prompt variants are served for the arm's (model_id, revision) in
    `arm_of`; (arms, queries) 0/1, the answer of the variant that is better on the query's task
    (`raygems.results.accuracy_table`), as the search counts it). None when `out` holds no store or another pool."""
    import pandas as pd

    from raygems.results import PROMPT_VARIANTS, accuracy_table, read_results, result_files

    if not out or not RunDirectory(out).pool.is_file():
        return None
    query_ids = pd.read_parquet(RunDirectory(out).pool, columns=["query_id"])["query_id"].tolist()
    if len(query_ids) != num_queries:
        return None
    recorded = np.zeros((len(arm_of), num_queries), dtype=bool)
    rewards = np.zeros((len(arm_of), num_queries), dtype=np.uint8)
    if not result_files(out):
        return recorded, rewards
    query_of = {q: i for i, q in enumerate(query_ids)}
    rows = read_results(out, columns=())
    ours = np.fromiter((key in arm_of for key in zip(rows["model_id"], rows["revision"])), bool, len(rows))
    rows = rows[rows["query_id"].isin(query_of).to_numpy() & ours]
    both = rows.groupby(["model_id", "revision", "query_id"])["variant"].transform("nunique") == len(PROMPT_VARIANTS)
    rows = rows[both]
    if rows.empty:
        return recorded, rewards
    better = accuracy_table(rows)[["model_id", "revision", "task", "variant"]]
    counted = rows.merge(better, on=["model_id", "revision", "task", "variant"])
    arms = [arm_of[key] for key in zip(counted["model_id"], counted["revision"])]
    queries = counted["query_id"].map(query_of).to_numpy(dtype=np.int64)
    recorded[arms, queries] = True
    rewards[arms, queries] = counted["reward"].to_numpy(dtype=np.uint8)
    return recorded, rewards
