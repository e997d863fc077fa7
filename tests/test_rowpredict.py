"""The one-row predictor gives what ``Booster.predict`` gives, and refuses rows it cannot read."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from fedrisk.models.rowpredict import RowPredictor

FEATURES = 7


@pytest.fixture(scope="module")
def booster() -> lgb.Booster:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2_000, FEATURES))
    x[rng.random(x.shape) < 0.1] = np.nan  # PreCheck's rows carry NaN where SQL gives NULL
    y = (np.nan_to_num(x[:, 0]) + np.nan_to_num(x[:, 1]) * x[:, 2] ** 2 > 0.5).astype(int)
    params = {"objective": "binary", "num_leaves": 15, "verbose": -1, "seed": 3}
    return lgb.train(params, lgb.Dataset(x, y), num_boost_round=40)


@pytest.fixture(scope="module")
def predictor(booster: lgb.Booster) -> RowPredictor:
    return RowPredictor(booster)


ROWS = arrays(
    np.float64,
    FEATURES,
    elements=st.one_of(
        st.floats(-5, 5),
        st.just(np.nan),
        st.sampled_from([np.inf, -np.inf, 1e300, -1e300, 0.0]),
    ),
)


@settings(max_examples=300, deadline=None)
@given(row=ROWS)
def test_score_and_contributions_equal_booster_predict(
    booster: lgb.Booster, predictor: RowPredictor, row: np.ndarray
) -> None:
    expected = booster.predict(row[None, :])[0]
    assert predictor.score(row) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    contributions = booster.predict(row[None, :], pred_contrib=True)[0]
    np.testing.assert_allclose(predictor.contributions(row), contributions, rtol=1e-12, atol=1e-15)


def test_a_non_contiguous_row_is_read_as_its_values(
    booster: lgb.Booster, predictor: RowPredictor
) -> None:
    matrix = np.arange(FEATURES * 2, dtype=np.float64).reshape(FEATURES, 2) / 7
    row = matrix[:, 1]
    assert not row.flags.c_contiguous
    assert predictor.score(row) == pytest.approx(booster.predict(row[None, :].copy())[0])


@pytest.mark.parametrize(
    "row",
    [
        np.zeros(FEATURES - 1),
        np.zeros(FEATURES + 1),
        np.zeros((1, FEATURES)),
        np.zeros(FEATURES, dtype=np.float32),
        np.zeros(FEATURES, dtype=np.int64),
    ],
    ids=["short", "long", "matrix", "float32", "int64"],
)
def test_a_row_of_the_wrong_shape_or_type_is_refused(
    predictor: RowPredictor, row: np.ndarray
) -> None:
    with pytest.raises(ValueError, match=f"a row of {FEATURES} float64 values"):
        predictor.score(row)
    with pytest.raises(ValueError, match=f"a row of {FEATURES} float64 values"):
        predictor.contributions(row)


def test_a_closed_predictor_refuses_to_predict(booster: lgb.Booster) -> None:
    predictor = RowPredictor(booster)
    predictor.score(np.zeros(FEATURES))
    predictor.close()
    predictor.close()  # closing twice is harmless
    with pytest.raises(ValueError, match="closed"):
        predictor.score(np.zeros(FEATURES))


def test_lightgbm_errors_carry_lightgbm_message() -> None:
    class NotAModel(lgb.Booster):
        def __init__(self) -> None:  # no model behind it: only what RowPredictor reads
            pass

        def num_feature(self) -> int:
            return FEATURES

        def model_to_string(self, *args: object, **kwargs: object) -> str:
            return "not a model"

    with pytest.raises(lgb.basic.LightGBMError):
        RowPredictor(NotAModel())
