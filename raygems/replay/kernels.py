"""Compiled fast paths for long replays: whole runs of index-policy steps in one call (optional numba).

Why: a replay of an index policy is K*N sequential steps per repetition. Vectorising one step over the R
repetitions in numpy costs ~60 small numpy calls and several passes over (R, K) arrays per step, i.e.
150-300 us, and a Table 7 grid needs millions of steps. Here one call runs a repetition from its current
state to a target budget, one step at a time, in compiled code.

Exactness: the kernel computes the *same floating-point expressions in the same order* as the numpy
ask/tell path (`bandits/index_policies.py`, which hands over its state as an `IndexKernelState`), draws answers
with the fast environment's own reward draw (`answers.draw_answer`) and takes the same first-index argmax, so it
makes the same choices, bit for bit (tests/replay/test_fast_paths.py compares both paths and a reference saved
before this module existed).
Every per-step scalar that numpy computes with a transcendental function (ln t, sqrt(2 ln t), ...) is
taken from a table that numpy itself computed, so no libm difference can creep in.

Speed without changing the argmax: the index of UCB1 / UCB1-Tuned / UCB-V / mean+SE is a composition of
IEEE operations that are each monotone non-decreasing in the per-step scalars, and the scalars grow with t.
So the index value an arm will have at step t_end is an upper bound on its value at every step t <= t_end.
The kernel keeps these bounds in a max-tournament tree (rebuilt once per epoch of steps) and evaluates the
exact index only for arms whose bound is not below the best exact value found so far. That prunes all but a
few arms per step, and the argmax (first index among exact float ties) is still the exact one. UCB-E's
index has no t term inside a phase, so its bound is its value.

numba is optional (`raygems.compiled`): without it (or with RAYGEMS_NO_NUMBA=1) the replay uses the numpy
ask/tell loop, which gives identical results, only slower.
"""
from __future__ import annotations

import numpy as np

from raygems.bandits.index_policies import (
    KIND_MEAN_SE,
    KIND_TUNED,
    KIND_UCB,
    KIND_UCB_E,
    KIND_UCB_V,
    IndexKernelState,
)
from raygems.compiled import jit
from raygems.replay.answers import pull_once

#: counters of the compiled path, process-wide: steps, exact index evaluations, bound-tree rebuilds
KERNEL_STATS = np.zeros(3, dtype=np.int64)


def advance_index_policy(state: IndexKernelState, target: int, correct_total: np.ndarray, seen: np.ndarray) -> None:
    """Advance every repetition of an index policy to `target` evaluations (or until it has nothing left to
    pull), answering from the fast environment whose arrays are `correct_total` (K,) and `seen` (R, K)."""
    run_index_policy(state.kind, target, state.num_queries, state.seeds, state.tie_priority, correct_total,
                     state.failed, state.pulls, state.successes, state.budget_used, seen, state.mean, state.base,
                     state.inv_n, state.sqrt_inv_n, state.variance, state.table1, state.table2, *state.ucbe,
                     state.epoch_div, KERNEL_STATS)


@jit
def _index_value(kind, i, base, inv_n, sqrt_inv_n, var, explore_sqrt, s1, s2):
    """The exact index of arm i (same operations, same order as index_policies.py)."""
    b = base[i]
    if kind == KIND_UCB:
        return sqrt_inv_n[i] * s1 + b
    if kind == KIND_TUNED:
        w = sqrt_inv_n[i] * s1
        w = w + var[i]
        w = min(w, 0.25)
        w = w * inv_n[i]
        w = np.sqrt(w)
        w = w * s2
        return w + b
    if kind == KIND_UCB_V:
        w = var[i] * inv_n[i]
        w = np.sqrt(w)
        w = w * s1
        w = w + inv_n[i] * s2
        return w + b
    if kind == KIND_MEAN_SE:
        w = var[i] * inv_n[i]
        w = np.sqrt(w)
        w = w * s1
        return w + b
    return b + explore_sqrt * sqrt_inv_n[i]  # KIND_UCB_E


@jit
def _tree_build(tree, leaves, size):
    for i in range(size):
        tree[size + i] = -np.inf
    for i in range(leaves.shape[0]):
        tree[size + i] = leaves[i]
    for node in range(size - 1, 0, -1):
        left, right = tree[2 * node], tree[2 * node + 1]
        tree[node] = left if left >= right else right


@jit
def _tree_set(tree, size, i, value):
    node = size + i
    tree[node] = value
    node //= 2
    while node >= 1:
        left, right = tree[2 * node], tree[2 * node + 1]
        tree[node] = left if left >= right else right
        node //= 2


@jit
def _exact_argmax(kind, tree, size, stack, base, inv_n, sqrt_inv_n, var, explore_sqrt, s1, s2, stats):
    """First-index argmax of the exact index at the current step, visiting only arms whose bound (the tree
    leaves) is not below the best exact value found so far. Returns -1 when every index is -inf."""
    best = -np.inf
    best_arm = -1
    top = 0
    stack[0] = 1
    top = 1
    while top > 0:
        top -= 1
        node = stack[top]
        bound = tree[node]
        if bound < best or bound == -np.inf:
            continue
        if node >= size:
            stats[1] += 1
            i = node - size
            v = _index_value(kind, i, base, inv_n, sqrt_inv_n, var, explore_sqrt, s1, s2)
            if v > best or (v == best and i < best_arm):
                best = v
                best_arm = i
        else:
            left, right = 2 * node, 2 * node + 1
            if tree[left] >= tree[right]:  # visit the larger bound first: best grows faster
                stack[top] = right
                stack[top + 1] = left
            else:
                stack[top] = left
                stack[top + 1] = right
            top += 2
    if best == -np.inf:
        return -1
    return best_arm


@jit
def _empirical_means(successes_r, pulls_r, failed_r):
    """Empirical means of one repetition (-inf for failed arms), the best mean and its first arm."""
    k = pulls_r.shape[0]
    means = np.empty(k)
    best = -np.inf
    leader = 0
    for i in range(k):
        m = successes_r[i] / max(pulls_r[i], 1)
        if failed_r[i]:
            m = -np.inf
        means[i] = m
        if m > best:
            best = m
            leader = i
    return means, best, leader


@jit
def _ucbe_plugin_hardness(successes_r, pulls_r, failed_r, gap_floor):
    """Plug-in UCB-E's Hhat_1 = sum_i 1 / D_i^2 (index_policies.UCBE._plugin_hardness, one repetition)."""
    k = pulls_r.shape[0]
    means, best, leader = _empirical_means(successes_r, pulls_r, failed_r)
    runner_up = -np.inf
    for i in range(k):
        if i != leader and means[i] > runner_up:
            runner_up = means[i]
    hardness = 0.0
    for i in range(k):
        if failed_r[i]:
            continue
        gap = best - runner_up if i == leader else best - means[i]
        if gap != gap:          # nan: -inf - -inf
            continue
        gap = max(gap, gap_floor)
        hardness += 1.0 / (gap * gap)
    return max(hardness, 1e-12)


@jit
def _ucbe_hardness(successes_r, pulls_r, failed_r, gap_floor, k_largest):
    """UCB-E's Hhat from the k largest empirical gaps (index_policies.UCBE._hardness, one repetition)."""
    k = pulls_r.shape[0]
    means, best, _ = _empirical_means(successes_r, pulls_r, failed_r)
    gaps = np.empty(k)
    for i in range(k):
        gaps[i] = np.inf if failed_r[i] else max(best - means[i], gap_floor)
    gaps = np.sort(gaps)
    hardness = -np.inf
    for j in range(k - k_largest, k):
        g = gaps[j]
        term = (j + 1.0) / (g * g)
        if term > hardness:
            hardness = term
    return hardness


@jit
def run_index_policy(kind, target, num_queries, keys, tie_priority, correct_total, failed,
                     pulls, successes, budget_used, seen,
                     mean, base, inv_n, sqrt_inv_n, var, table1, table2,
                     ucbe_phase_ends, ucbe_phase, ucbe_exploration, ucbe_index, ucbe_c, ucbe_budget,
                     ucbe_gap_floor, ucbe_plugin, epoch_div, stats):
    """Advance every repetition to `target` pulls (or until it has nothing left to pull).

    Arrays are the algorithm's own state, updated in place. `table1[t]`, `table2[t]` are the per-step
    scalars at budget_used == t, computed by numpy. `stats` (int64[3]) accumulates steps, exact index
    evaluations in argmax searches, and bound-tree rebuilds.
    """
    reps, k = pulls.shape
    size = 1
    while size < k:
        size *= 2
    tree = np.empty(2 * size)
    bounds = np.empty(k)
    stack = np.empty(2 * size + 2, dtype=np.int64)
    big = 1 << 62
    for r in range(reps):
        key = keys[r]
        epoch_end = -1
        explore_sqrt = 0.0
        while budget_used[r] < target:
            t = budget_used[r]
            if kind == KIND_UCB_E:
                # phase = number of phase ends <= t (np.searchsorted(..., side="right"))
                phase = np.searchsorted(ucbe_phase_ends, t, side="right")
                if phase != ucbe_phase[r]:
                    if ucbe_plugin:
                        hardness = _ucbe_plugin_hardness(successes[r], pulls[r], failed[r], ucbe_gap_floor)
                        ucbe_exploration[r] = (25.0 / 36.0) * (ucbe_budget - k) / hardness
                    elif phase == 0:
                        ucbe_exploration[r] = ucbe_c * ucbe_budget / k
                    else:
                        hardness = _ucbe_hardness(successes[r], pulls[r], failed[r], ucbe_gap_floor,
                                                  min(phase, k - 1))
                        ucbe_exploration[r] = ucbe_c * ucbe_budget / hardness
                    ucbe_phase[r] = phase
                    explore_sqrt = np.sqrt(ucbe_exploration[r])
                    for i in range(k):
                        ucbe_index[r, i] = base[r, i] + np.sqrt(ucbe_exploration[r]) * sqrt_inv_n[r, i]
                    epoch_end = -1
                explore_sqrt = np.sqrt(ucbe_exploration[r])
                if epoch_end < 0:
                    for i in range(k):
                        bounds[i] = ucbe_index[r, i]
                    _tree_build(tree, bounds, size)
                    stats[2] += 1
                    epoch_end = big
                arm = _exact_argmax(kind, tree, size, stack, base[r], inv_n[r], sqrt_inv_n[r], var[r],
                                    explore_sqrt, 0.0, 0.0, stats)
            else:
                if t > epoch_end:
                    epoch_end = min(t + max(8, t // epoch_div), target - 1)
                    e1, e2 = table1[epoch_end], table2[epoch_end]
                    for i in range(k):
                        bounds[i] = _index_value(kind, i, base[r], inv_n[r], sqrt_inv_n[r], var[r], 0.0, e1, e2)
                    _tree_build(tree, bounds, size)
                    stats[2] += 1
                arm = _exact_argmax(kind, tree, size, stack, base[r], inv_n[r], sqrt_inv_n[r], var[r], 0.0,
                                    table1[t], table2[t], stats)
            if arm < 0:
                break  # every arm of this repetition is exhausted or failed
            # ---- the fast environment's answer (answers.answer_pulls, count == 1) and BanditAlgorithm.tell
            pull_once(key, r, arm, pulls, successes, seen, budget_used, correct_total, num_queries)
            stats[0] += 1
            # ---- IndexPolicy._update and on_pulled
            n = float(pulls[r, arm])
            m = successes[r, arm] / n
            mean[r, arm] = m
            inverse = 1.0 / n
            inv_n[r, arm] = inverse
            sqrt_inv_n[r, arm] = np.sqrt(inverse)
            b = m + tie_priority[r, arm]
            if n >= num_queries or failed[r, arm]:
                b = -np.inf
            base[r, arm] = b
            if kind == KIND_TUNED or kind == KIND_UCB_V:
                var[r, arm] = m * (1.0 - m)
            elif kind == KIND_MEAN_SE:
                smoothed = (successes[r, arm] + 1.0) / (pulls[r, arm] + 2.0)
                var[r, arm] = smoothed * (1.0 - smoothed)
                if b != -np.inf:
                    base[r, arm] = b + (smoothed - m)
            if kind == KIND_UCB_E:
                ucbe_index[r, arm] = base[r, arm] + np.sqrt(ucbe_exploration[r]) * sqrt_inv_n[r, arm]
                _tree_set(tree, size, arm, ucbe_index[r, arm])
            elif budget_used[r] <= epoch_end:
                _tree_set(tree, size, arm, _index_value(kind, arm, base[r], inv_n[r], sqrt_inv_n[r], var[r], 0.0,
                                                        table1[epoch_end], table2[epoch_end]))
