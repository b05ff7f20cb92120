"""`njit`: numba's compiler for the scorer's sequential per-proposal loops (the LQR/bicycle closed loop).

Those loops step 40 times with feedback, so numpy can vectorise them only across proposals; for the one to three rows
of a cold single-proposal token the per-call overhead of ~80 small numpy operations per step dominated. Compiled
scalar loops remove it. numba is a core dependency; where it cannot be imported the same functions run as plain
Python (identical results, slower), so nothing else depends on it. Compiled code is cached on disk (`cache=True`).
"""

from __future__ import annotations

try:  # pragma: no cover - exercised by whichever branch the environment has
    from numba import njit as _numba_njit

    def njit(fn):
        return _numba_njit(cache=True, nogil=True)(fn)

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover

    def njit(fn):
        return fn

    HAVE_NUMBA = False

__all__ = ["HAVE_NUMBA", "njit"]
