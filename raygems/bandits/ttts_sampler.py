"""Exact and fast posterior-argmax draws for Top-Two Thompson Sampling (compiled with numba when installed).

TTTS needs, at every step, the argmax of one joint draw from K Beta posteriors (and, half of the time, more
draws until the argmax differs from the leader). Drawing all K variates costs K Beta samples per draw; but
only the few arms whose draw lands near the top can be the argmax. This module draws exactly the same
distribution of argmax while touching only those arms:

* Per repetition a threshold tau is kept (refreshed from the 8th largest value of a fresh full draw when
  the expected work per draw leaves a band; any tau gives exact draws, tau only affects speed).
* For a log-concave posterior (a, b >= 1) the tangent of log f at tau bounds the upper tail:
  f(x) <= f(tau) exp(lam (x - tau)) on (tau, 1), with lam = (a-1)/tau - (b-1)/(1-tau). Its mass
  E = f(tau) * int_0^(1-tau) exp(lam y) dy is known in closed form. Arms with E <= 1/2 are *tail arms*:
  each independently becomes a candidate with probability E (the candidates are found by skipping over
  the arms with exponential gaps on the cumulative hazard -log(1 - E), so the work is proportional to the
  number of candidates, not to K), proposes x from the envelope and keeps it with probability
  f(x) / envelope(x). This thinning gives exactly: P(arm exceeds tau) = P(theta > tau), with the value
  distributed as theta given theta > tau. Other arms (E > 1/2, or a prior below 1) are drawn in full.
* If the best value found is above tau it is the argmax: every other tail arm lies below tau. Otherwise
  (rare by the choice of tau) the remaining tail arms are drawn given theta <= tau (rejection from the full
  posterior, acceptance >= 1/2) and the argmax is taken over everything.

Randomness is counter-based, as everywhere in raygems: the variates of draw j at step t of a repetition
come from a splitmix64 sequence seeded by hash(repetition key, STREAM_POSTERIOR, t, j), so a repetition
makes the same choices whatever R is, and ask/tell (R = 1, live search) and the compiled replay loop agree.
Without numba the very same functions run as plain Python (slow, identical results; only log, log1p,
expm1, exp, sqrt, cos and pow of libm are used, and lgamma is computed here, so both modes agree).
"""
from __future__ import annotations

import math

import numpy as np

from raygems.bandits.randomness import _COUNTER_WEIGHTS, _S11, _TO_UNIT, STREAM_POSTERIOR, _stream_offset, mix64_scalar
from raygems.compiled import jit

_U64 = np.uint64
_W0 = _COUNTER_WEIGHTS[0]
_W1 = _COUNTER_WEIGHTS[1]
_POSTERIOR_OFFSET = _stream_offset(STREAM_POSTERIOR)
_GOLDEN = _U64(0x9E3779B97F4A7C15)

#: draw ids (the second counter) of the draws that are not posterior argmax draws 0 .. max_redraws
DRAW_COIN = 1 << 20
DRAW_REFRESH = (1 << 20) + 1
#: tau = the TARGET-th largest value of a fresh draw; refresh when the expected work leaves [LOW, HIGH]
TARGET_RANK = 8
COST_LOW = 4.0
COST_HIGH = 24.0
#: tail arms have envelope mass at most this (so drawing below tau by rejection accepts >= 1 - this)
MAX_ENVELOPE = 0.5
BLOCK = 32



@jit
def _lgamma(x):
    """log Gamma(x) for x >= 0.5 (Lanczos, g = 7; relative error ~1e-15). Written out so that the compiled
    and the plain-Python paths compute the same value."""
    x = x - 1.0
    s = 0.99999999999980993
    s += 676.5203681218851 / (x + 1.0)
    s += -1259.1392167224028 / (x + 2.0)
    s += 771.32342877765313 / (x + 3.0)
    s += -176.61502916214059 / (x + 4.0)
    s += 12.507343278686905 / (x + 5.0)
    s += -0.13857109526572012 / (x + 6.0)
    s += 9.9843695780195716e-6 / (x + 7.0)
    s += 1.5056327351493116e-7 / (x + 8.0)
    t = x + 7.5
    return 0.91893853320467274 + (x + 0.5) * math.log(t) - t + math.log(s)


@jit
def _seed(key, step, draw):
    """hash(key, STREAM_POSTERIOR, step, draw), the seed of one draw's variate sequence."""
    return mix64_scalar(key + (_POSTERIOR_OFFSET + _U64(step) * _W0 + _U64(draw) * _W1))


@jit
def _uniform(state):
    """Next uniform in (0, 1) of the sequence whose counter is state[0] (splitmix64)."""
    state[0] += _GOLDEN
    return (float(mix64_scalar(state[0]) >> _S11) + 0.5) * _TO_UNIT


@jit
def _normal(state):
    u1 = _uniform(state)
    u2 = _uniform(state)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(6.283185307179586 * u2)


@jit
def _gamma_at_least_one(a, state):
    """Gamma(a, 1) for a >= 1 (Marsaglia & Tsang 2000)."""
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        x = _normal(state)
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u = _uniform(state)
        if u < 1.0 - 0.0331 * (x * x) * (x * x):
            return d * v
        if math.log(u) < 0.5 * x * x + d * (1.0 - v + math.log(v)):
            return d * v


@jit
def _gamma(a, state):
    if a >= 1.0:
        return _gamma_at_least_one(a, state)
    g = _gamma_at_least_one(a + 1.0, state)
    return g * _uniform(state) ** (1.0 / a)


@jit
def _beta(a, b, state):
    """One Beta(a, b) variate, as X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b)."""
    while True:
        x = _gamma(a, state)
        y = _gamma(b, state)
        if x + y > 0.0:
            return x / (x + y)


@jit
def _slope(a, b, tau):
    """d/dx log f at tau for Beta(a, b)."""
    return (a - 1.0) / tau - (b - 1.0) / (1.0 - tau)


@jit
def _envelope_mass(a, b, tau):
    """Mass of the tangent envelope of Beta(a, b)'s density over (tau, 1); +inf when not log-concave."""
    if a < 1.0 or b < 1.0 or not (0.0 < tau < 1.0):
        return np.inf
    w = 1.0 - tau
    lam = _slope(a, b, tau)
    log_f = -(_lgamma(a) + _lgamma(b) - _lgamma(a + b))
    if a != 1.0:
        log_f += (a - 1.0) * math.log(tau)
    if b != 1.0:
        log_f += (b - 1.0) * math.log1p(-tau)
    lw = lam * w
    if abs(lw) < 1e-12:
        log_z = math.log(w)
    elif lam < 0.0:
        log_z = math.log(-math.expm1(lw)) - math.log(-lam)
    else:
        log_z = lw + math.log(-math.expm1(-lw)) - math.log(lam)
    if log_f + log_z > 0.0:
        return np.inf  # mass above 1: not a tail arm (and exp() would overflow in plain Python)
    return math.exp(log_f + log_z)


@jit
def _propose_above(a, b, tau, state):
    """One proposal from the envelope on (tau, 1), kept with probability f / envelope; -1.0 if rejected."""
    w = 1.0 - tau
    lam = _slope(a, b, tau)
    lw = lam * w
    u = _uniform(state)
    if abs(lw) < 1e-12:
        y = u * w
    elif lam < 0.0:
        y = math.log1p(u * math.expm1(lw)) / lam
    else:
        y = w + math.log(u + (1.0 - u) * math.exp(-lw)) / lam
    v = _uniform(state)
    if not (0.0 < y < w):
        return -1.0
    log_ratio = -lam * y
    if a != 1.0:
        log_ratio += (a - 1.0) * math.log1p(y / tau)
    if b != 1.0:
        log_ratio += (b - 1.0) * math.log1p(-y / w)
    if math.log(v) <= log_ratio:
        return tau + y
    return -1.0


@jit
def _below(a, b, tau, state):
    """theta ~ Beta(a, b) given theta <= tau (rejection; the callers' arms accept with probability >= 1/2)."""
    while True:
        x = _beta(a, b, state)
        if x <= tau:
            return x


# ------------------------------------------------------------------------------------- per-repetition state
@jit
def _refresh_arm(r, i, alpha, beta, usable, tau, mass, hazard, is_tail, block_hazard, block_mass):
    """Recompute arm i's envelope mass, hazard and tail membership and its block's sums (fixed order, so
    the values are a function of (alpha, beta, tau) alone). Returns True when its membership changed."""
    was_tail = is_tail[r, i]
    if usable[r, i]:
        m = _envelope_mass(alpha[r, i], beta[r, i], tau[r])
    else:
        m = 0.0
    tail = usable[r, i] and m <= MAX_ENVELOPE
    is_tail[r, i] = tail
    if tail:
        mass[r, i] = m
        hazard[r, i] = -math.log1p(-m)
    else:
        mass[r, i] = 0.0
        hazard[r, i] = 0.0
    k = mass.shape[1]
    blk = i // BLOCK
    hs = 0.0
    ms = 0.0
    for j in range(blk * BLOCK, min(k, (blk + 1) * BLOCK)):
        hs += hazard[r, j]
        ms += mass[r, j]
    block_hazard[r, blk] = hs
    block_mass[r, blk] = ms
    return was_tail != tail


@jit
def _rebuild_full_list(r, usable, is_tail, full_list, full_count):
    c = 0
    for i in range(usable.shape[1]):
        if usable[r, i] and not is_tail[r, i]:
            full_list[r, c] = i
            c += 1
    full_count[r] = c


@jit
def _rebuild_rep(r, alpha, beta, usable, tau, mass, hazard, is_tail, block_hazard, block_mass, full_list,
                 full_count):
    for i in range(alpha.shape[1]):
        _refresh_arm(r, i, alpha, beta, usable, tau, mass, hazard, is_tail, block_hazard, block_mass)
    _rebuild_full_list(r, usable, is_tail, full_list, full_count)


@jit
def _expected_work(r, block_mass, full_count):
    total = 0.0
    for blk in range(block_mass.shape[1]):
        total += block_mass[r, blk]
    return total + full_count[r]


@jit
def _refresh_threshold(r, key, step, alpha, beta, usable, tau, mass, hazard, is_tail, block_hazard,
                       block_mass, full_list, full_count, values):
    """tau := the TARGET_RANK-th largest value of a fresh full draw; then rebuild the repetition's state."""
    state = np.empty(1, dtype=np.uint64)
    state[0] = _seed(key, step, DRAW_REFRESH)
    n = 0
    for i in range(alpha.shape[1]):
        if usable[r, i]:
            values[n] = _beta(alpha[r, i], beta[r, i], state)
            n += 1
    if n == 0:
        tau[r] = np.nan
    else:
        ordered = np.sort(values[:n])
        tau[r] = ordered[max(n - TARGET_RANK, 0)]
    _rebuild_rep(r, alpha, beta, usable, tau, mass, hazard, is_tail, block_hazard, block_mass, full_list,
                 full_count)


@jit
def _note(i, x, exclude, r, pullable, best, best_arm, best_s, best_s_arm):
    """Fold value x of arm i into the running argmaxes (first index among equal values, like np.argmax)."""
    if x > best or (x == best and i < best_arm):
        best, best_arm = x, i
    if exclude >= 0 and i != exclude and pullable[r, i] and (x > best_s or (x == best_s and i < best_s_arm)):
        best_s, best_s_arm = x, i
    return best, best_arm, best_s, best_s_arm


@jit
def _argmax_draw(r, key, step, draw, exclude, alpha, beta, pullable, tau, hazard, block_hazard, is_tail,
                 full_list, full_count, have, touched, stats):
    """Argmax of one joint posterior draw over the usable arms; and, when exclude >= 0, the argmax of the
    same draw over the pullable arms other than `exclude` (-1 if none). Returns (argmax, argmax_excluding).
    `have` (bool) and `touched` (int) are scratch arrays of length K; `have` is all False on entry and on
    return."""
    k = alpha.shape[1]
    state = np.empty(1, dtype=np.uint64)
    state[0] = _seed(key, step, draw)
    t = tau[r]
    best, best_arm = -np.inf, -1
    best_s, best_s_arm = -np.inf, -1
    stats[0] += 1
    # arms drawn in full
    for c in range(full_count[r]):
        i = full_list[r, c]
        x = _beta(alpha[r, i], beta[r, i], state)
        best, best_arm, best_s, best_s_arm = _note(i, x, exclude, r, pullable, best, best_arm, best_s, best_s_arm)
    # tail arms: candidates by exponential skips over the cumulative hazard, then thinning
    total = 0.0
    for blk in range(block_hazard.shape[1]):
        total += block_hazard[r, blk]
    acc = 0.0
    pos = 0
    n_touched = 0
    while True:
        target = acc - math.log(_uniform(state))
        if target >= total:
            break
        found = -1
        while pos < k:
            if pos % BLOCK == 0 and acc + block_hazard[r, pos // BLOCK] < target:
                acc += block_hazard[r, pos // BLOCK]
                pos += BLOCK
                continue
            acc += hazard[r, pos]
            pos += 1
            if acc >= target:
                found = pos - 1
                break
        if found < 0:
            break
        stats[1] += 1
        x = _propose_above(alpha[r, found], beta[r, found], t, state)
        if x > 0.0:
            have[found] = True
            touched[n_touched] = found
            n_touched += 1
            best, best_arm, best_s, best_s_arm = _note(found, x, exclude, r, pullable, best, best_arm, best_s,
                                                       best_s_arm)
    if best > t and (exclude < 0 or best_s > t):
        for c in range(n_touched):
            have[touched[c]] = False
        return best_arm, best_s_arm
    # rare: every tail arm not drawn yet lies below tau; draw them given that, in arm order
    stats[2] += 1
    for i in range(k):
        if is_tail[r, i] and not have[i]:
            x = _below(alpha[r, i], beta[r, i], t, state)
            best, best_arm, best_s, best_s_arm = _note(i, x, exclude, r, pullable, best, best_arm, best_s,
                                                       best_s_arm)
        have[i] = False
    return best_arm, best_s_arm


@jit
def choose(r, key, step, beta_tt, max_redraws, alpha, beta, usable, pullable, tau, refreshed_at, mass, hazard,
           is_tail, block_hazard, block_mass, full_list, full_count, have, touched, values, min_spacing, stats):
    """One TTTS decision for repetition r at its decision number `step`: the arm to pull, or -1 if none."""
    work = _expected_work(r, block_mass, full_count)
    if np.isnan(tau[r]) or ((work < COST_LOW or work > COST_HIGH) and step - refreshed_at[r] >= min_spacing):
        _refresh_threshold(r, key, step, alpha, beta, usable, tau, mass, hazard, is_tail, block_hazard,
                           block_mass, full_list, full_count, values)
        refreshed_at[r] = step
        stats[3] += 1
    leader, _ = _argmax_draw(r, key, step, 0, -1, alpha, beta, pullable, tau, hazard, block_hazard, is_tail,
                             full_list, full_count, have, touched, stats)
    if leader < 0:
        return -1
    coin = np.empty(1, dtype=np.uint64)
    coin[0] = _seed(key, step, DRAW_COIN)
    if _uniform(coin) < beta_tt and pullable[r, leader]:
        return leader
    other = -1
    for j in range(1, max_redraws + 1):
        exclude = leader if j == max_redraws else -1
        challenger, other = _argmax_draw(r, key, step, j, exclude, alpha, beta, pullable, tau, hazard,
                                         block_hazard, is_tail, full_list, full_count, have, touched, stats)
        if challenger != leader and pullable[r, challenger]:
            return challenger
    if max_redraws == 0:
        _, other = _argmax_draw(r, key, step, 0, leader, alpha, beta, pullable, tau, hazard, block_hazard,
                                is_tail, full_list, full_count, have, touched, stats)
    # no challenger in max_redraws draws: the best arm other than the leader in the last draw
    if other >= 0:
        return other
    return leader if pullable[r, leader] else -1


@jit
def after_pull(r, arm, alpha, beta, usable, tau, mass, hazard, is_tail, block_hazard, block_mass, full_list,
               full_count):
    """Refresh the sampler state of an arm whose posterior (or usability) just changed."""
    if _refresh_arm(r, arm, alpha, beta, usable, tau, mass, hazard, is_tail, block_hazard, block_mass):
        _rebuild_full_list(r, usable, is_tail, full_list, full_count)


@jit
def rebuild(alpha, beta, usable, tau, mass, hazard, is_tail, block_hazard, block_mass, full_list, full_count):
    """Recompute the sampler state of every repetition that has a threshold (after a restore)."""
    for r in range(alpha.shape[0]):
        if not np.isnan(tau[r]):
            _rebuild_rep(r, alpha, beta, usable, tau, mass, hazard, is_tail, block_hazard, block_mass,
                         full_list, full_count)


@jit
def choose_all(active, steps, keys, beta_tt, max_redraws, alpha, beta, usable, pullable, tau, refreshed_at, mass,
               hazard, is_tail, block_hazard, block_mass, full_list, full_count, min_spacing, stats):
    """One decision for every active repetition (the ask() path); -1 for the others."""
    reps, k = alpha.shape
    have = np.zeros(k, dtype=np.bool_)
    touched = np.empty(k, dtype=np.int64)
    values = np.empty(k)
    chosen = np.full(reps, -1, dtype=np.int64)
    for r in range(reps):
        if active[r]:
            chosen[r] = choose(r, keys[r], steps[r], beta_tt, max_redraws, alpha, beta, usable, pullable, tau,
                               refreshed_at, mass, hazard, is_tail, block_hazard, block_mass, full_list,
                               full_count, have, touched, values, min_spacing, stats)
    return chosen


#: the first counter of the recommendation's Monte Carlo draws lies above every decision number
MC_STEP_BASE = 1 << 41


@jit
def probability_best(alpha, beta, plausible, keys, steps, mc_samples, stats):
    """Monte Carlo P(arm is the argmax) from `mc_samples` joint posterior draws over the plausible arms,
    per repetition (the TTTS "p-best" recommendation). Each draw is exact (the sampler above, with its
    own threshold), so this is the same estimator as counting argmaxes of full draws. Counter-based: the
    draws of repetition r depend on (key, steps[r]) only. Leaves the algorithm's sampler state alone."""
    reps, k = alpha.shape
    blocks = (k + BLOCK - 1) // BLOCK
    out = np.zeros((reps, k))
    have = np.zeros(k, dtype=np.bool_)
    touched = np.empty(k, dtype=np.int64)
    values = np.empty(k)
    for r in range(reps):
        a = alpha[r:r + 1]
        b = beta[r:r + 1]
        usable = plausible[r:r + 1]
        tau = np.full(1, np.nan)
        mass = np.zeros((1, k))
        hazard = np.zeros((1, k))
        is_tail = np.zeros((1, k), dtype=np.bool_)
        block_hazard = np.zeros((1, blocks))
        block_mass = np.zeros((1, blocks))
        full_list = np.zeros((1, k), dtype=np.int64)
        full_count = np.zeros(1, dtype=np.int64)
        step = MC_STEP_BASE + steps[r]
        _refresh_threshold(0, keys[r], step, a, b, usable, tau, mass, hazard, is_tail, block_hazard, block_mass,
                           full_list, full_count, values)
        for j in range(mc_samples):
            winner, _ = _argmax_draw(0, keys[r], step, j, -1, a, b, usable, tau, hazard, block_hazard, is_tail,
                                     full_list, full_count, have, touched, stats)
            if winner >= 0:
                out[r, winner] += 1.0
        for i in range(k):
            out[r, i] /= mc_samples
    return out
