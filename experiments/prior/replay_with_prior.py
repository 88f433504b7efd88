"""Does the learned prior help the search? Replays on populations built from real leaderboard rows.

    OMP_NUM_THREADS=1 python experiments/prior/replay_with_prior.py --out experiments/prior/results

Population: K models of one family and size from a leaderboard snapshot (e.g. v1 MistralForCausalLM at
7-7.5B), each with its real score on the target task. Item-level answers are drawn consistently with those
scores from a two-parameter item-response model: every query j has a difficulty b_j ~ N(0, 1.5) and a
discrimination a_j ~ LogNormal(0, 0.3); model k gets the ability theta_k that solves
mean_j sigmoid(a_j (theta_k - b_j)) = score_k, and answers query j correctly with that probability. So a
model's accuracy on the pool matches its leaderboard score (up to sampling noise), and queries are
correlated across models as real ones are (hard items are hard for everyone).

No leakage: one prior is trained on both snapshots minus every record (all tasks) of every population's
models, so each candidate is a model the prior has never seen: it ranks them from metadata only, as it
would new fine-tunes.

Conditions, per method and budget N (queries per model; the replay engine's `replay`):
* `none`: the method as is;
* `priority`: the prior's ranking as `arm_priority` (first-round tie-break; elimination methods);
* `beliefs@S`: the prior's Beta beliefs at strength S as `prior_alpha`/`prior_beta` (bayes-elim, ttts),
  plus priority where the method takes it;
* `prune50`: only the prior's top half is downloaded and searched (same N per searched model);
* `prune50+beliefs@S`: both.
and `prior-top1`: no search at all, the prior's first choice. Rank = 1 + number of population models with a
strictly higher pool accuracy; downloads = models that answered at least one query.
"""
from __future__ import annotations

import argparse
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from raygems.bandits import get_method  # noqa: E402
from raygems.prior import (ModelPrior, PriorConfig, model_table, records_from_leaderboard_v1,  # noqa: E402
                           records_from_leaderboard_v2)
from raygems.replay import CorrectnessMatrix, rank_of, replay  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Population:
    name: str
    source: str            # open_llm_leaderboard_v1 | _v2
    architecture: str
    params_low: float
    params_high: float
    task: str


POPULATIONS = (
    Population("mistral-7b", "open_llm_leaderboard_v1", "MistralForCausalLM", 6.5, 7.6, "gsm8k"),
    Population("mistral-7b", "open_llm_leaderboard_v1", "MistralForCausalLM", 6.5, 7.6, "arc_challenge"),
    Population("llama-7-8b", "open_llm_leaderboard_v1", "LlamaForCausalLM", 6.5, 8.1, "winogrande"),
    Population("qwen2-7b", "open_llm_leaderboard_v2", "Qwen2ForCausalLM", 7.0, 7.7, "math_lvl5"),
)


def item_response_matrix(scores: np.ndarray, num_queries: int, rng: np.random.Generator) -> np.ndarray:
    """(K, Q) 0/1 answers whose per-model mean follows `scores` (see the module docstring)."""
    difficulty = rng.normal(0.0, 1.5, num_queries)
    discrimination = rng.lognormal(0.0, 0.3, num_queries)
    targets = np.clip(scores, 0.002, 0.998)
    low, high = np.full(len(targets), -15.0), np.full(len(targets), 15.0)
    for _ in range(60):   # bisection on theta: the mean solve probability is increasing in theta
        mid = (low + high) / 2
        mean = (1 / (1 + np.exp(-discrimination * (mid[:, None] - difficulty)))).mean(axis=1)
        low = np.where(mean < targets, mid, low)
        high = np.where(mean >= targets, mid, high)
    theta = (low + high) / 2
    probability = 1 / (1 + np.exp(-discrimination * (theta[:, None] - difficulty)))
    return (rng.random(probability.shape) < probability).astype(np.uint8)


def population_models(records: pd.DataFrame, spec: Population, size: int, rng: np.random.Generator) -> pd.DataFrame:
    rows = records[(records["source"] == spec.source) & (records["task"] == spec.task)
                   & (records["architecture"] == spec.architecture)
                   & records["params_b"].between(spec.params_low, spec.params_high)]
    if len(rows) < size:
        raise SystemExit(f"{spec.name}/{spec.task}: only {len(rows)} models, asked for {size}")
    return rows.iloc[rng.choice(len(rows), size=size, replace=False)].reset_index(drop=True)


def build_population(records, spec, args, rng) -> tuple[pd.DataFrame, CorrectnessMatrix]:
    chosen = population_models(records, spec, args.models, rng)
    matrix = CorrectnessMatrix(item_response_matrix(chosen["score"].to_numpy(), args.queries, rng),
                               tuple(chosen["model_id"]), tuple(f"{spec.task}:{j}" for j in range(args.queries)))
    return chosen, matrix


def run_population(records, spec, chosen, matrix, prior, args) -> pd.DataFrame:
    accuracies = matrix.accuracies
    candidates = model_table(records[records["model_id"].isin(set(chosen["model_id"]))]).set_index("model_id")
    candidates = candidates.loc[list(chosen["model_id"])].reset_index()
    scores = prior.scores(candidates, spec.task)
    beliefs = {strength: prior.beliefs(candidates, spec.task, strength=strength) for strength in args.strengths}
    from scipy.stats import spearmanr
    rho = spearmanr(scores, accuracies).statistic
    print(f"{spec.name}/{spec.task}: K={matrix.num_models}, Q={matrix.num_queries}, "
          f"Spearman(prior, accuracy)={rho:.3f}", flush=True)

    kept = np.sort(np.argsort(-scores, kind="stable")[: int(np.ceil(args.keep * len(scores)))])
    sub = CorrectnessMatrix(matrix.values[kept], tuple(np.asarray(matrix.model_ids)[kept]), matrix.query_ids)
    rows = []
    top1 = int(np.argmax(scores))
    base = {"population": spec.name, "task": spec.task, "K": matrix.num_models, "Q": matrix.num_queries,
            "spearman_prior": round(float(rho), 3), "best_accuracy": float(accuracies.max())}
    rows.append({**base, "method": "prior-top1", "condition": "no search", "N": 0,
                 "mean_rank": float(rank_of(accuracies, np.array([top1]))[0]), "mean_accuracy": float(accuracies[top1]),
                 "p_top1": float(rank_of(accuracies, np.array([top1]))[0] == 1), "downloads": 1})
    for method in args.methods:
        method_spec = get_method(method)
        for budget in args.budgets:
            conditions = {"none": (matrix, None, {})}
            if method_spec.accepts_arm_priority:
                conditions["priority"] = (matrix, None, {"arm_priority": scores})
            prune = f"prune{int(args.keep * 100)}"
            if method_spec.accepts_beliefs:
                extra = {"arm_priority": scores} if method_spec.accepts_arm_priority else {}
                for strength, (alpha0, beta0) in beliefs.items():
                    conditions[f"beliefs@{strength:g}"] = (matrix, None, {"prior_alpha": alpha0, "prior_beta": beta0,
                                                                          **extra})
            conditions[prune] = (sub, kept, {})
            if method_spec.accepts_beliefs:
                for strength, (alpha0, beta0) in beliefs.items():
                    conditions[f"{prune}+beliefs@{strength:g}"] = (
                        sub, kept, {"prior_alpha": alpha0[kept], "prior_beta": beta0[kept]})
            reps = args.ttts_reps if method == "ttts" else args.reps
            for condition, (m, index, options) in conditions.items():
                result = replay(m, method, budget, reps=reps, seed=args.seed, options=options)
                arms = result.per_rep["arm"].to_numpy()
                global_arms = arms if index is None else index[arms]
                ranks = rank_of(accuracies, global_arms)
                rows.append({**base, "method": method, "condition": condition, "N": budget, "reps": reps,
                             "mean_rank": float(ranks.mean()), "se_rank": float(ranks.std(ddof=1) / np.sqrt(len(ranks))),
                             "mean_accuracy": float(accuracies[global_arms].mean()),
                             "p_top1": float((ranks == 1).mean()), "downloads": m.num_models})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    parser.add_argument("--out", type=Path, default=REPO / "experiments/prior/results")
    parser.add_argument("--models", type=int, default=300, help="population size K")
    parser.add_argument("--queries", type=int, default=1000, help="query pool size Q")
    parser.add_argument("--budgets", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--methods", nargs="+", default=["ours", "bayes-elim", "ttts"])
    parser.add_argument("--keep", type=float, default=0.5)
    parser.add_argument("--strengths", type=float, nargs="+", default=[1.0, 0.25],
                        help="belief strengths to try (1 = calibrated; see ModelPrior.beliefs)")
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--ttts-reps", type=int, default=50, help="TTTS is slow (one pull per step)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--populations", nargs="*", default=None, help="NAME/TASK entries (default: all)")
    args = parser.parse_args()
    args.steps = args.steps or PriorConfig().steps
    warnings.filterwarnings("ignore", category=UserWarning)
    torch.set_num_threads(1)
    board = args.shared / "data/leaderboard"
    records = pd.concat([records_from_leaderboard_v1(board / "huggingface_v1_2024-07-07.csv"),
                         records_from_leaderboard_v2(board / "huggingface_v2_2025-03-21.csv")], ignore_index=True)
    rng = np.random.default_rng(args.seed)
    specs = [p for p in POPULATIONS if args.populations is None or f"{p.name}/{p.task}" in args.populations]
    populations = [(spec, *build_population(records, spec, args, rng)) for spec in specs]
    # One prior for all populations, trained without any record (any task) of any population model.
    held_out = set().union(*(set(chosen["model_id"]) for _, chosen, _ in populations))
    start = time.perf_counter()
    prior = ModelPrior(PriorConfig(steps=args.steps, seed=args.seed)).fit(records[~records["model_id"].isin(held_out)])
    print(f"prior fitted without the {len(held_out)} population models in {time.perf_counter() - start:.0f} s",
          flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    frames = []
    for spec, chosen, matrix in populations:
        frames.append(run_population(records, spec, chosen, matrix, prior, args))
        pd.concat(frames).to_csv(args.out / f"replay_with_prior_seed{args.seed}.csv", index=False)
    results = pd.concat(frames, ignore_index=True)
    results.to_csv(args.out / f"replay_with_prior_seed{args.seed}.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(results.drop(columns=["K", "Q"]).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
