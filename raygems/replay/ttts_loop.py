"""The compiled replay loop of Top-Two Thompson Sampling: whole runs of TTTS decisions in one call.

Each step makes the decision of `TopTwoThompsonSampling.ask()` (the sampler's `choose`, the same counter-based
draws), answers it with the fast environment's reward draw (`answers.draw_answer`) and updates the state as
`tell()` does, so a repetition decides exactly as through ask/tell (tests/replay/test_fast_paths.py).
"""
from __future__ import annotations

import numpy as np

from raygems.bandits.ttts import TTTSKernelState
from raygems.bandits.ttts_sampler import after_pull, choose
from raygems.compiled import jit
from raygems.replay.answers import pull_once


def advance_ttts(state: TTTSKernelState, target: int, correct_total: np.ndarray, seen: np.ndarray) -> None:
    """Advance every repetition to `target` evaluations, answering from the fast environment whose arrays are
    `correct_total` (K,) and `seen` (R, K)."""
    run_ttts(target, state.num_queries, state.seeds, state.beta, state.max_redraws, correct_total, seen,
             state.pulls, state.successes, state.budget_used, state.decisions_made, state.prior_alpha,
             state.prior_beta, *state.sampler)


@jit
def run_ttts(target, num_queries, keys, beta_tt, max_redraws, correct_total, seen, pulls, successes, budget_used,
             steps, prior_alpha, prior_beta, alpha, beta, usable, pullable, tau, refreshed_at, mass, hazard,
             is_tail, block_hazard, block_mass, full_list, full_count, min_spacing, stats):
    """Advance every repetition to `target` pulls, updating all state in place."""
    reps, k = alpha.shape
    have = np.zeros(k, dtype=np.bool_)
    touched = np.empty(k, dtype=np.int64)
    values = np.empty(k)
    for r in range(reps):
        key = keys[r]
        while budget_used[r] < target:
            arm = choose(r, key, steps[r], beta_tt, max_redraws, alpha, beta, usable, pullable, tau,
                         refreshed_at, mass, hazard, is_tail, block_hazard, block_mass, full_list, full_count,
                         have, touched, values, min_spacing, stats)
            if arm < 0:
                break
            steps[r] += 1
            pull_once(key, r, arm, pulls, successes, seen, budget_used, correct_total, num_queries)
            alpha[r, arm] = prior_alpha[r, arm] + successes[r, arm]
            beta[r, arm] = prior_beta[r, arm] + pulls[r, arm] - successes[r, arm]
            if pulls[r, arm] >= num_queries:
                pullable[r, arm] = False
            after_pull(r, arm, alpha, beta, usable, tau, mass, hazard, is_tail, block_hazard, block_mass,
                       full_list, full_count)
