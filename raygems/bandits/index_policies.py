"""Index policies used for pure exploration: UCB1, UCB-StdDev (UCB1-Tuned by default) and UCB-E.

Each pulls every arm once, then one arm per step: the argmax of an index (spec 2-4). They recommend the
empirical best arm (EBA), ties broken by more pulls, then at random.

Speed: the loop over the B steps is sequential, each step vectorised over the R repetitions. Index arrays
are kept up to date incrementally (only the pulled arm's entry changes, apart from the global ln t term).
Ties in the per-step argmax are broken by a random priority per (repetition, arm), drawn once per run,
instead of a fresh draw per step (a fresh (R, K) draw per step would dominate the cost). Ties matter at
the start, when many arms share (n, S); each arm is equally likely to come first.

Replays: a compiled loop (`raygems.replay.kernels`, when numba is installed) advances all repetitions to a
budget in one call, making exactly the choices of the ask/tell loop (same expressions, same order). The policy
hands it its state (`kernel_state()`: arrays it updates in place, per-step scalars computed here by numpy) and
resynchronises afterwards (`after_compiled_steps()`); it never sees the environment.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from raygems.bandits.base import BanditAlgorithm, Pulls
from raygems.bandits.randomness import STREAM_PRIORITY, STREAM_TIEBREAK, uniform
from raygems.bandits.schedules import successive_rejects_schedule

_TIE_SCALE = 1e-10

# Kinds of index a compiled loop computes (`kernel_kind()`), with the per-step scalars T1, T2 (`kernel_tables`).
KIND_UCB = 0          # sqrt_inv_n * T1 + base                       (T1 = c sqrt(2 ln t))
KIND_TUNED = 1        # sqrt(min(sqrt_inv_n*T1 + var, 1/4) * inv_n) * T2 + base  (T1 = sqrt(2 ln t), T2 = sqrt(ln t))
KIND_UCB_V = 2        # sqrt(var * inv_n) * T1 + inv_n * T2 + base   (T1 = sqrt(2 ln t), T2 = 3 ln t)
KIND_MEAN_SE = 3      # sqrt(var * inv_n) * T1 + base                (T1 = c sqrt(2 ln t))
KIND_UCB_E = 4        # base + sqrt(a) * sqrt_inv_n, a fixed within a phase


@dataclass(frozen=True)
class IndexKernelState:
    """An index policy's state as a compiled replay loop advances it (`raygems.replay.kernels`): the policy's own
    arrays (updated in place), its constants, and the per-step scalars `table1[t]`, `table2[t]` at
    budget_used == t. `ucbe` is UCB-E's phase state (phase ends, phase, exploration, index, c, budget, gap floor,
    plug-in mode); placeholders for the other kinds."""

    kind: int
    num_queries: int
    seeds: np.ndarray
    tie_priority: np.ndarray
    failed: np.ndarray
    pulls: np.ndarray
    successes: np.ndarray
    budget_used: np.ndarray
    mean: np.ndarray
    base: np.ndarray
    inv_n: np.ndarray
    sqrt_inv_n: np.ndarray
    variance: np.ndarray
    table1: np.ndarray
    table2: np.ndarray
    ucbe: tuple
    epoch_div: int


class IndexPolicy(BanditAlgorithm):
    """Pull every arm once, then the argmax of `index()` each step.

    Per-arm quantities are cached in float arrays and refreshed only for the arms just pulled, so a step
    costs a few passes over the (R, K) arrays.
    """

    def __init__(self, num_arms, num_queries, budget_per_model, seeds):
        super().__init__(num_arms, num_queries, budget_per_model, seeds)
        self.initialized = False
        # tie-break priority in (0, 1e-10): fixed per run (see module docstring)
        self.tie_priority = _TIE_SCALE * uniform(self.seeds, STREAM_PRIORITY, np.arange(self.num_arms))
        shape = (self.reps, self.num_arms)
        self._rows = np.arange(self.reps)
        self._mean = np.zeros(shape)                  # S / n
        self._base = np.full(shape, -np.inf)          # mean + tie priority; -inf when the arm cannot be pulled
        self._inv_n = np.ones(shape)                  # 1 / n
        self._sqrt_inv_n = np.ones(shape)             # 1 / sqrt(n)
        self._work = np.empty(shape)                  # scratch for index computations
        self._work2 = np.empty(shape)
        self._exhausted = False
        self._step_scalars: tuple[np.ndarray, np.ndarray] | None = None   # per-step scalars, up to B

    @property
    def done(self) -> bool:
        if self._budget_low >= self.budget:
            return True
        if self.initialized and (self._exhausted or self._any_failed):
            return not ((self.pulls < self.num_queries) & ~self.failed).any()
        return False

    def ask(self) -> Pulls | None:
        if self._pending is not None:
            return self._pending
        if self.done:
            return None
        if not self.initialized:
            return self._pull_every_arm_once()
        index = self.index()
        arm = np.argmax(index, axis=1)
        rep = self._rows
        if self._exhausted or self._any_failed or self._budget_high >= self.budget:
            active = np.isfinite(index[rep, arm]) & (self.budget_used < self.budget)
            rep, arm = rep[active], arm[active]
        pulls = Pulls(rep, arm, self.pulls[rep, arm], np.ones(rep.shape[0], dtype=np.int64), False, self.order)
        return self._issue(pulls)

    def _update(self, pulls: Pulls, successes: np.ndarray) -> None:
        self.initialized = True
        rep, arm = pulls.rep, pulls.arm
        flat = rep * self.num_arms + arm
        n = np.maximum(self.pulls.ravel()[flat], 1).astype(np.float64)  # failed arms may have 0 pulls
        mean = self.successes.ravel()[flat] / n
        self._mean.ravel()[flat] = mean
        inv_n = 1.0 / n
        self._inv_n.ravel()[flat] = inv_n
        self._sqrt_inv_n.ravel()[flat] = np.sqrt(inv_n)
        base = mean + self.tie_priority.ravel()[flat]
        if self._any_failed or n.max() >= self.num_queries:
            closed = (n >= self.num_queries) | self.failed.ravel()[flat]
            self._exhausted = self._exhausted or bool((n >= self.num_queries).any())
            base[closed] = -np.inf
        self._base.ravel()[flat] = base
        self.on_pulled(rep, arm)

    def mark_failed(self, failed) -> None:
        super().mark_failed(failed)
        self._base[self.failed] = -np.inf

    def load_state_dict(self, state) -> None:
        super().load_state_dict(state)
        rep, arm = np.nonzero(self.pulls > 0)
        self._exhausted = bool((self.pulls >= self.num_queries).any())
        if rep.size:  # rebuild the per-arm caches from the restored counts
            self._update(Pulls(rep, arm, self.pulls[rep, arm], np.ones_like(rep), False, self.order),
                         np.zeros_like(rep))

    # ------------------------------------------------------------------------------ compiled fast path
    #: epochs of the kernel's bound tree last max(8, t // KERNEL_EPOCH_DIV) steps (speed only, see kernels.py)
    KERNEL_EPOCH_DIV: ClassVar[int] = 512

    def kernel_kind(self) -> int | None:
        """The KIND_* of this policy, or None when the compiled path does not cover it."""
        return None

    def kernel_tables(self, log_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-step scalars (table1[t], table2[t]) at budget_used == t, computed with numpy exactly as
        `index()` computes them from `_log_t()`."""
        return np.zeros_like(log_t), np.zeros_like(log_t)

    def kernel_state(self) -> IndexKernelState | None:
        """The state a compiled replay loop advances in place, or None when no loop covers this policy as
        configured (a kind without a kernel, or per-step scalars that do not grow with t: the kernel's bound
        argument needs them to)."""
        kind = self.kernel_kind()
        if kind is None:
            return None
        if self._step_scalars is None:
            log_t = np.log(np.arange(self.budget + 1, dtype=np.int64) + 1.0)  # as _log_t(): log(budget_used + 1.0)
            tables = self.kernel_tables(log_t)
            self._step_scalars = tuple(np.ascontiguousarray(x, dtype=np.float64) for x in tables)
        table1, table2 = self._step_scalars
        if np.any(np.diff(table1) < 0) or np.any(np.diff(table2) < 0):
            return None
        return IndexKernelState(kind, self.num_queries, self.seeds, self.tie_priority, self.failed, self.pulls,
                                self.successes, self.budget_used, self._mean, self._base, self._inv_n,
                                self._sqrt_inv_n, self._kernel_variance(), table1, table2,
                                self._kernel_ucbe_arguments(), self.KERNEL_EPOCH_DIV)

    def after_compiled_steps(self) -> None:
        super().after_compiled_steps()
        self._exhausted = bool((self.pulls >= self.num_queries).any())
        self._after_kernel()

    def _kernel_variance(self) -> np.ndarray:
        return self._work  # unused by kinds without a variance term

    def _kernel_ucbe_arguments(self) -> tuple:
        dummy_i = np.zeros(1, dtype=np.int64)
        return (dummy_i, np.zeros(self.reps, dtype=np.int64), np.zeros(self.reps), self._work2, 0.0, 0, 0.0, False)

    def _after_kernel(self) -> None:
        """Hook: resynchronise caches the kernel does not maintain."""

    def on_pulled(self, rep: np.ndarray, arm: np.ndarray) -> None:
        """Hook: refresh cached per-arm quantities of the arms just pulled."""

    def index(self) -> np.ndarray:
        """(R, K) index including tie-break priority; -inf for arms that cannot be pulled."""
        raise NotImplementedError

    def recommend(self) -> np.ndarray:
        """Empirical best arm; ties by more pulls, then at random."""
        means = np.where(self.failed | (self.pulls == 0), -np.inf, self.means)
        jitter = uniform(self.seeds, STREAM_TIEBREAK, -1, np.arange(self.num_arms))
        order = np.lexsort((jitter, self.pulls, means), axis=-1)
        return order[:, -1]

    def _log_t(self) -> np.ndarray:
        """ln t per repetition, t = the 1-based index of the pull being chosen, as an (R, 1) column."""
        return np.log(self.budget_used + 1.0)[:, None]


class UCB(IndexPolicy):
    """UCB1 (Auer et al. 2002): mean + c * sqrt(2 ln t / n), c = 1."""

    def __init__(self, *args, c: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        if c <= 0:
            raise ValueError(f"c must be positive, got {c}")
        self.c = float(c)

    def index(self) -> np.ndarray:
        out = self._work
        np.multiply(self._sqrt_inv_n, self.c * np.sqrt(2.0 * self._log_t()), out=out)
        return np.add(out, self._base, out=out)

    def kernel_kind(self) -> int | None:
        return KIND_UCB

    def kernel_tables(self, log_t):
        return self.c * np.sqrt(2.0 * log_t), np.zeros_like(log_t)


class UCBStdDev(IndexPolicy):
    """UCB-StdDev: a UCB whose width scales with the empirical standard deviation (spec 3).

    variant "tuned" (default): UCB1-Tuned, mean + sqrt(ln t / n * min(1/4, s2 + sqrt(2 ln t / n)));
    "ucb-v": UCB-V (Audibert, Munos, Szepesvari 2009), mean + sqrt(2 s2 ln t / n) + 3 ln t / n;
    "mean-se": smoothed mean + c sqrt(2 ln t) sqrt(p(1-p)/n), p = (S+1)/(n+2).
    Bernoulli rewards: the empirical variance (1/n normalisation) is s2 = mean (1 - mean).
    """

    VARIANTS = ("tuned", "ucb-v", "mean-se")

    def __init__(self, *args, variant: str = "tuned", c: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        if variant not in self.VARIANTS:
            raise ValueError(f"variant must be one of {self.VARIANTS}, got {variant!r}")
        if c <= 0:
            raise ValueError(f"c must be positive, got {c}")
        self.variant = variant
        self.c = float(c)   # used by "mean-se" only
        self._variance = np.zeros((self.reps, self.num_arms))

    def on_pulled(self, rep, arm):
        if self.variant == "mean-se":
            n = self.pulls[rep, arm]
            smoothed = (self.successes[rep, arm] + 1.0) / (n + 2.0)
            self._variance[rep, arm] = smoothed * (1.0 - smoothed)
            shift = smoothed - self._mean[rep, arm]       # the centre is the smoothed mean
            self._base[rep, arm] = np.where(np.isfinite(self._base[rep, arm]), self._base[rep, arm] + shift, -np.inf)
        else:
            mean = self._mean[rep, arm]
            self._variance[rep, arm] = mean * (1.0 - mean)

    def kernel_kind(self) -> int | None:
        if self.variant == "tuned":
            return KIND_TUNED
        if self.variant == "ucb-v":
            return KIND_UCB_V
        return KIND_MEAN_SE if self.c > 0 else None

    def kernel_tables(self, log_t):
        if self.variant == "tuned":
            return np.sqrt(2.0 * log_t), np.sqrt(log_t)
        if self.variant == "ucb-v":
            return np.sqrt(2.0 * log_t), 3.0 * log_t
        return self.c * np.sqrt(2.0 * log_t), np.zeros_like(log_t)

    def _kernel_variance(self) -> np.ndarray:
        return self._variance

    def index(self) -> np.ndarray:
        log_t = self._log_t()
        out, tmp = self._work, self._work2
        if self.variant == "tuned":
            np.multiply(self._sqrt_inv_n, np.sqrt(2.0 * log_t), out=out)   # sqrt(2 ln t / n)
            np.add(out, self._variance, out=out)                           # V = s2 + sqrt(2 ln t / n)
            np.minimum(out, 0.25, out=out)
            np.multiply(out, self._inv_n, out=out)
            np.sqrt(out, out=out)
            np.multiply(out, np.sqrt(log_t), out=out)                      # sqrt(ln t / n * min(1/4, V))
        elif self.variant == "ucb-v":
            np.multiply(self._variance, self._inv_n, out=out)
            np.sqrt(out, out=out)
            np.multiply(out, np.sqrt(2.0 * log_t), out=out)
            np.multiply(self._inv_n, 3.0 * log_t, out=tmp)
            np.add(out, tmp, out=out)
        else:
            np.multiply(self._variance, self._inv_n, out=out)
            np.sqrt(out, out=out)
            np.multiply(out, self.c * np.sqrt(2.0 * log_t), out=out)
        return np.add(out, self._base, out=out)


class UCBE(IndexPolicy):
    """UCB-E (Audibert & Bubeck 2010): mean + sqrt(a / n), no ln t (spec 4).

    mode "adaptive" (default): Adaptive UCB-E; time is split into Successive Rejects' phases and phase k uses
        a_k = c * B / Hhat_k, Hhat_0 = K, Hhat_k = max over the k largest empirical gaps D_(i) of i / D_(i)^2,
        gaps floored at `gap_floor` (0.01).
    mode "plugin": a = (25/36) (B - K) / Hhat_1 re-estimated every K pulls, Hhat_1 = sum_i 1 / D_i^2 over
        the empirical gaps (the empirical best arm's gap is its gap to the runner-up; gaps floored at
        `gap_floor`), starting from a = B / K (spec 4).
    Not anytime: a depends on the budget B.
    """

    MODES = ("adaptive", "plugin")

    def __init__(self, *args, mode: str = "adaptive", c: float = 1.0, gap_floor: float = 0.01, **kwargs):
        super().__init__(*args, **kwargs)
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}, got {mode!r}")
        if c <= 0 or gap_floor <= 0:
            raise ValueError(f"c and gap_floor must be positive, got c={c}, gap_floor={gap_floor}")
        self.mode, self.c, self.gap_floor = mode, float(c), float(gap_floor)
        k = self.num_arms
        if mode == "adaptive":
            schedule = successive_rejects_schedule(k, self.budget_per_model, self.num_queries)
            # t_k = total pulls at the end of SR phase k; phase k (k = 0 .. K-2) covers (t_k, t_{k+1}].
            ends, alive, total = [], k, 0
            for rnd in schedule:
                total += alive * rnd.queries_per_arm
                ends.append(total)
                alive = rnd.keep
            self.phase_ends = np.asarray(ends, dtype=np.int64)
        else:
            self.phase_ends = np.arange(2 * k, self.budget + k, k, dtype=np.int64)
        self.phase = np.full(self.reps, -1, dtype=np.int64)
        self._next_phase_end: int | None = None
        self.exploration = np.full(self.reps, self.c * self.budget / k if mode == "adaptive" else self.budget / k)
        self._index = np.full((self.reps, k), -np.inf)

    def _hardness(self, k_largest: int) -> np.ndarray:
        """Hhat from the k largest empirical gaps, per repetition."""
        means = np.where(self.failed, -np.inf, self.means)
        best = means.max(axis=1, keepdims=True)
        gaps = np.where(self.failed, np.inf, np.maximum(best - means, self.gap_floor))
        gaps = np.sort(gaps, axis=1)  # ascending: D_(1) <= ... <= D_(K)
        i = np.arange(1, self.num_arms + 1, dtype=np.float64)
        terms = i / gaps**2
        return terms[:, self.num_arms - k_largest:].max(axis=1)

    def _plugin_hardness(self) -> np.ndarray:
        """Hhat_1 = sum_i 1 / D_i^2 per repetition (failed arms left out), summed in arm order like the
        compiled kernel (`raygems.replay.kernels._ucbe_plugin_hardness`), so both give the same bits."""
        means = np.where(self.failed, -np.inf, self.means)
        top2 = np.sort(means, axis=1)[:, -2:]
        best, runner_up = top2[:, 1:], top2[:, :1]
        gaps = best - means
        rows = np.arange(self.reps)
        leader = np.argmax(means, axis=1)
        with np.errstate(invalid="ignore"):
            gaps[rows, leader] = (best - runner_up)[:, 0]
        gaps = np.where(np.isnan(gaps), np.inf, np.maximum(gaps, self.gap_floor))
        gaps[self.failed] = np.inf
        hardness = np.cumsum(1.0 / (gaps * gaps), axis=1)[:, -1]
        return np.maximum(hardness, 1e-12)   # one arm left: nothing to explore

    def _refresh_phase(self) -> None:
        if self._next_phase_end is not None and self._budget_high < self._next_phase_end:
            return  # no repetition crossed a phase boundary
        phase = np.searchsorted(self.phase_ends, self.budget_used, side="right")
        changed = phase != self.phase
        if not changed.any():
            return
        for p in np.unique(phase[changed]):
            rows = changed & (phase == p)
            if self.mode == "adaptive":
                hardness = self.num_arms if p == 0 else self._hardness(int(min(p, self.num_arms - 1)))[rows]
                self.exploration[rows] = self.c * self.budget / hardness
            else:
                hardness = self._plugin_hardness()[rows]
                self.exploration[rows] = (25.0 / 36.0) * (self.budget - self.num_arms) / hardness
        self.phase = phase
        self._recompute(changed)
        upcoming = self.phase_ends[self.phase[self.phase < self.phase_ends.size]]
        self._next_phase_end = int(upcoming.min()) if upcoming.size else np.iinfo(np.int64).max

    def load_state_dict(self, state) -> None:
        self._next_phase_end = None
        super().load_state_dict(state)
        self._recompute(np.ones(self.reps, dtype=bool))

    def _recompute(self, rows: np.ndarray) -> None:
        width = np.sqrt(self.exploration[rows, None]) * self._sqrt_inv_n[rows]
        self._index[rows] = self._base[rows] + width

    def on_pulled(self, rep: np.ndarray, arm: np.ndarray) -> None:
        self._index[rep, arm] = self._base[rep, arm] + np.sqrt(self.exploration[rep]) * self._sqrt_inv_n[rep, arm]

    def mark_failed(self, failed) -> None:
        super().mark_failed(failed)
        self._index[self.failed] = -np.inf

    def index(self) -> np.ndarray:
        self._refresh_phase()
        return self._index

    def kernel_kind(self) -> int | None:
        return KIND_UCB_E

    def _kernel_ucbe_arguments(self) -> tuple:
        return (self.phase_ends, self.phase, self.exploration, self._index, self.c, self.budget, self.gap_floor,
                self.mode == "plugin")

    def _after_kernel(self) -> None:
        upcoming = self.phase_ends[self.phase[(self.phase >= 0) & (self.phase < self.phase_ends.size)]]
        self._next_phase_end = int(upcoming.min()) if upcoming.size else np.iinfo(np.int64).max

