"""Optional numba: one switch for every compiled function of raygems (the TTTS sampler in `bandits`, the replay's
loops and reward draws in `replay`).

With numba installed, `jit` compiles a function (`numba.njit`, cached on disk, releasing the GIL); without it, or
with RAYGEMS_NO_NUMBA=1, `HAVE_NUMBA` is False and `jit` leaves the function as plain Python, which gives the
same results, only slower (each compiled function is written so that both modes compute the same bits).
"""
from __future__ import annotations

import os

try:  # pragma: no cover - depends on the environment
    if os.environ.get("RAYGEMS_NO_NUMBA", "").strip() not in ("", "0"):
        raise ImportError("disabled by RAYGEMS_NO_NUMBA")
    import numba

    HAVE_NUMBA = True
    jit = numba.njit(cache=True, nogil=True)
except ImportError:  # the numpy paths are used instead
    numba = None
    HAVE_NUMBA = False

    def jit(fn):
        return fn
