"""One row at a time through LightGBM's fast single-row C API.

``Booster.predict`` on a single row parses its parameters and builds a predictor on every call:
of the ~21 us one row cost PreCheck here, ~15 us was that set-up, not the trees. LightGBM's C API
has a variant whose set-up is done once (``LGBM_BoosterPredictForMatSingleRowFastInit``, then
``LGBM_BoosterPredictForMatSingleRowFast`` per row; the R package exposes it as
``lgb.configure_fast_predict``, the Python package does not). This module is that, for dense
float64 rows, with the same results as ``Booster.predict`` (``tests/test_rowpredict.py``).

The predictor loads its own copy of the model from the booster's model string, so it never
touches the Python booster's private handle; it needs only the library the ``lightgbm`` package
has loaded. Not thread-safe: a FastConfig holds one row's buffers. PreCheck's worker checks one
claim at a time on one thread.
"""

from __future__ import annotations

import ctypes
import weakref

import lightgbm as lgb
import numpy as np
from lightgbm import basic
from numpy.typing import NDArray

# c_api.h's constants.
_DTYPE_FLOAT64 = 1
_PREDICT_NORMAL = 0
_PREDICT_CONTRIB = 3
_ALL_ITERATIONS = -1


class RowPredictor:
    """A model's score and feature contributions for one dense float64 row at a time."""

    def __init__(self, booster: lgb.Booster, num_threads: int = 1) -> None:
        self.num_features = booster.num_feature()
        # The library the lightgbm package loaded: basic's own in 4.5, imported from libpath since.
        self._lib: ctypes.CDLL = basic._LIB  # type: ignore[attr-defined]
        self._booster = _load(self._lib, booster.model_to_string())
        configs = (self._booster, self.num_features, num_threads)
        self._normal = _fast_config(self._lib, _PREDICT_NORMAL, *configs)
        self._contrib = _fast_config(self._lib, _PREDICT_CONTRIB, *configs)
        self._free = weakref.finalize(
            self, _free, self._lib, self._booster, (self._normal, self._contrib)
        )

    def score(self, row: NDArray[np.float64]) -> float:
        """What ``booster.predict(row[None, :])[0]`` gives (the objective's transform applied)."""
        out = np.empty(1, np.float64)
        self._predict(self._normal, row, out)
        return float(out[0])

    def contributions(self, row: NDArray[np.float64]) -> NDArray[np.float64]:
        """What ``booster.predict(row[None, :], pred_contrib=True)[0]`` gives: one SHAP value a
        feature, then the expected value."""
        out = np.empty(self.num_features + 1, np.float64)
        self._predict(self._contrib, row, out)
        return out

    def close(self) -> None:
        """Free the C handles now rather than when the predictor is collected."""
        self._free()

    def _predict(
        self, config: ctypes.c_void_p, row: NDArray[np.float64], out: NDArray[np.float64]
    ) -> None:
        # The C side reads num_features doubles from the pointer whatever the array holds.
        if row.dtype != np.float64 or row.shape != (self.num_features,):
            raise ValueError(
                f"a row of {self.num_features} float64 values, not {row.dtype} {row.shape}"
            )
        if not self._free.alive:
            raise ValueError("the predictor is closed")
        row = np.ascontiguousarray(row)
        written = ctypes.c_int64()
        _check(
            self._lib,
            self._lib.LGBM_BoosterPredictForMatSingleRowFast(
                config,
                ctypes.c_void_p(row.ctypes.data),
                ctypes.byref(written),
                ctypes.c_void_p(out.ctypes.data),
            ),
        )
        if written.value != len(out):
            raise lgb.basic.LightGBMError(f"LightGBM wrote {written.value} values, not {len(out)}")


def _load(lib: ctypes.CDLL, model: str) -> ctypes.c_void_p:
    handle = ctypes.c_void_p()
    iterations = ctypes.c_int()
    _check(
        lib,
        lib.LGBM_BoosterLoadModelFromString(
            model.encode(), ctypes.byref(iterations), ctypes.byref(handle)
        ),
    )
    return handle


def _fast_config(
    lib: ctypes.CDLL,
    predict_type: int,
    booster: ctypes.c_void_p,
    num_features: int,
    num_threads: int,
) -> ctypes.c_void_p:
    config = ctypes.c_void_p()
    _check(
        lib,
        lib.LGBM_BoosterPredictForMatSingleRowFastInit(
            booster,
            ctypes.c_int(predict_type),
            ctypes.c_int(0),
            ctypes.c_int(_ALL_ITERATIONS),
            ctypes.c_int(_DTYPE_FLOAT64),
            ctypes.c_int32(num_features),
            f"num_threads={num_threads}".encode(),
            ctypes.byref(config),
        ),
    )
    return config


def _free(lib: ctypes.CDLL, booster: ctypes.c_void_p, configs: tuple[ctypes.c_void_p, ...]) -> None:
    for config in configs:
        lib.LGBM_FastConfigFree(config)
    lib.LGBM_BoosterFree(booster)


def _check(lib: ctypes.CDLL, code: int) -> None:
    if code != 0:  # the lightgbm package declared LGBM_GetLastError's char* result
        raise lgb.basic.LightGBMError(lib.LGBM_GetLastError().decode())
