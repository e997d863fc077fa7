"""Evaluation metrics of a risk score: hand cases, brute-force properties, errors and PNG curves."""

from __future__ import annotations

import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fedrisk.models.metrics import (
    average_precision,
    best_f1_threshold,
    pr_curve,
    roc_auc,
    roc_curve,
    write_curves,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Small inputs with many ties: scores from a handful of integers.
rows = st.lists(st.tuples(st.integers(0, 1), st.integers(0, 5)), min_size=2, max_size=40)


def _split(pairs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    labels = np.array([p[0] for p in pairs])
    scores = np.array([p[1] for p in pairs], dtype=float)
    assume(0 < labels.sum() < len(labels))
    return labels, scores


def _brute_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann–Whitney: share of (fraud, clean) pairs where fraud scores higher, ties 1/2."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return float(wins / (len(pos) * len(neg)))


def _brute_thresholds(labels: np.ndarray, scores: np.ndarray) -> list[tuple[float, int, int]]:
    """(threshold, TP, FP) for every distinct score, highest first, flagging score >= threshold."""
    out = []
    for t in sorted(set(scores.tolist()), reverse=True):
        flagged = scores >= t
        out.append((t, int((flagged & (labels == 1)).sum()), int((flagged & (labels == 0)).sum())))
    return out


def _brute_ap(labels: np.ndarray, scores: np.ndarray) -> float:
    n_pos, total, prev_recall = int(labels.sum()), 0.0, 0.0
    for _, tp, fp in _brute_thresholds(labels, scores):
        recall = tp / n_pos
        total += (recall - prev_recall) * tp / (tp + fp)
        prev_recall = recall
    return total


def _brute_best_f1(labels: np.ndarray, scores: np.ndarray) -> float:
    n_pos = int(labels.sum())
    best_t, best_f1 = None, -1.0
    for t, tp, fp in _brute_thresholds(labels, scores):
        precision, recall = tp / (tp + fp), tp / n_pos
        f1 = 0.0 if tp == 0 else 2 * precision * recall / (precision + recall)
        if f1 > best_f1 + 1e-12:  # strictly better only: ties keep the higher threshold
            best_t, best_f1 = t, f1
    assert best_t is not None
    return best_t


# --- hand cases -------------------------------------------------------------------------------


def test_hand_case() -> None:
    labels, scores = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    # Pairs (fraud, clean): 0.35>0.1, 0.35<0.4, 0.8>0.1, 0.8>0.4 -> 3/4.
    assert roc_auc(labels, scores) == pytest.approx(0.75)
    # Thresholds 0.8 (R 1/2, P 1), 0.4 (R 1/2), 0.35 (R 1, P 2/3), 0.1 (R 1): 1/2 + 1/2 * 2/3.
    assert average_precision(labels, scores) == pytest.approx(5 / 6)
    roc = roc_curve(labels, scores)
    np.testing.assert_allclose(roc.x, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(roc.y, [0, 0.5, 0.5, 1, 1])
    pr = pr_curve(labels, scores)
    np.testing.assert_allclose(pr.x, [1, 1, 0.5, 0.5, 0])
    np.testing.assert_allclose(pr.y, [0.5, 2 / 3, 0.5, 1, 1])


def test_tied_scores_make_one_diagonal_step() -> None:
    labels, scores = [0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]
    roc = roc_curve(labels, scores)
    np.testing.assert_allclose(roc.x, [0, 0, 0.5, 1])
    np.testing.assert_allclose(roc.y, [0, 0.5, 1, 1])
    assert roc_auc(labels, scores) == pytest.approx(0.875)  # the tied pair counts 1/2: 3.5 / 4
    # 0.9: R 1/2 P 1; 0.5 (both tied rows at once): R 1 P 2/3.
    assert average_precision(labels, scores) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_best_f1_threshold_hand_case() -> None:
    # F1 at 0.8: 2/3, at 0.4: 1/2, at 0.35: 4/5, at 0.1: 2/3.
    assert best_f1_threshold([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.35


def test_best_f1_threshold_tie_takes_higher_threshold() -> None:
    # F1 at 0.9: 2/3, 0.8: 1/2, 0.7: 2/5, 0.6: 2/3, 0.1: 4/7 -> 0.9 and 0.6 tie, 0.9 wins.
    labels, scores = [1, 0, 0, 1, 0], [0.9, 0.8, 0.7, 0.6, 0.1]
    assert best_f1_threshold(labels, scores) == 0.9


def test_accepts_bool_and_float_labels_and_integer_scores() -> None:
    labels = np.array([False, False, True, True])
    scores = np.array([1, 4, 3, 8])
    assert roc_auc(labels, scores) == roc_auc(labels.astype(float), scores / 10) == 0.75


# --- properties -------------------------------------------------------------------------------


@given(rows)
def test_roc_auc_is_mann_whitney(pairs: list[tuple[int, int]]) -> None:
    labels, scores = _split(pairs)
    # Both divide the same integer count once, so they agree exactly.
    assert roc_auc(labels, scores) == _brute_auc(labels, scores)


@given(rows)
def test_average_precision_matches_threshold_loop(pairs: list[tuple[int, int]]) -> None:
    labels, scores = _split(pairs)
    assert average_precision(labels, scores) == pytest.approx(_brute_ap(labels, scores), abs=1e-12)


@given(rows)
def test_best_f1_threshold_matches_threshold_loop(pairs: list[tuple[int, int]]) -> None:
    labels, scores = _split(pairs)
    assert best_f1_threshold(labels, scores) == _brute_best_f1(labels, scores)


@given(rows)
def test_reversed_scores_complement_auc(pairs: list[tuple[int, int]]) -> None:
    labels, scores = _split(pairs)
    assert roc_auc(labels, scores) + roc_auc(labels, 1 - scores) == pytest.approx(1.0)


@given(rows)
def test_curve_shapes(pairs: list[tuple[int, int]]) -> None:
    labels, scores = _split(pairs)
    roc = roc_curve(labels, scores)
    assert (roc.x[0], roc.y[0], roc.x[-1], roc.y[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert (np.diff(roc.x) >= 0).all() and (np.diff(roc.y) >= 0).all()
    assert len(roc.x) == len(set(scores.tolist())) + 1  # one point per distinct score
    pr = pr_curve(labels, scores)
    assert pr.x[0] == 1.0 and pr.y[0] == pytest.approx(labels.mean())
    assert (pr.x[-1], pr.y[-1]) == (0.0, 1.0)
    assert (np.diff(pr.x) <= 0).all()  # recall decreasing, as documented
    # The PR step function (steps-post in this order) has area AP.
    area = float(np.sum(-np.diff(pr.x) * pr.y[:-1]))
    assert area == pytest.approx(average_precision(labels, scores), abs=1e-12)


@given(st.integers(1, 30), st.integers(1, 30), st.integers(0, 2**32 - 1))
@settings(max_examples=30)
def test_perfect_separation(n_pos: int, n_neg: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = np.array([1] * n_pos + [0] * n_neg)
    scores = np.concatenate([rng.uniform(0.6, 1, n_pos), rng.uniform(0, 0.5, n_neg)])
    order = rng.permutation(len(labels))
    labels, scores = labels[order], scores[order]
    assert roc_auc(labels, scores) == 1.0
    assert average_precision(labels, scores) == 1.0
    assert best_f1_threshold(labels, scores) == scores[labels == 1].min()
    assert roc_auc(labels, -scores) == 0.0


def test_random_labels_give_auc_near_half() -> None:
    rng = np.random.default_rng(20240601)
    scores = rng.random(20_000)
    labels = rng.integers(0, 2, 20_000)
    assert 0.45 <= roc_auc(labels, scores) <= 0.55
    assert average_precision(labels, scores) == pytest.approx(labels.mean(), abs=0.03)


def test_curves_are_read_only() -> None:
    roc = roc_curve([0, 1], [0.2, 0.7])
    with pytest.raises(ValueError):
        roc.x[0] = 0.5


@pytest.mark.slow
def test_million_rows_fast() -> None:
    rng = np.random.default_rng(7)
    scores = np.round(rng.random(1_000_000), 4)  # with ties
    labels = (rng.random(1_000_000) < 0.02).astype(np.int8)
    start = time.perf_counter()
    auc, ap = roc_auc(labels, scores), average_precision(labels, scores)
    assert time.perf_counter() - start < 2.0
    assert 0.49 < auc < 0.51 and 0.015 < ap < 0.025


# --- errors -----------------------------------------------------------------------------------


def _write(labels: Any, scores: Any) -> None:
    write_curves(labels, scores, Path("/nonexistent/roc.png"), Path("/nonexistent/pr.png"), "t")


FUNCTIONS: list[Callable[[Any, Any], object]] = [
    roc_curve,
    pr_curve,
    roc_auc,
    average_precision,
    best_f1_threshold,
    _write,
]


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    ("labels", "scores", "message"),
    [
        ([0, 0, 0], [0.1, 0.2, 0.3], "both classes"),
        ([1, 1], [0.1, 0.2], "both classes"),
        ([0, 1, 1], [0.1, 0.2], "differ in length"),
        ([], [], "empty"),
        ([0, 2, 1], [0.1, 0.2, 0.3], "0 or 1"),
        ([0, -1, 1], [0.1, 0.2, 0.3], "0 or 1"),
        ([0, 0.5, 1], [0.1, 0.2, 0.3], "0 or 1"),
        (["0", "1"], [0.1, 0.2], "0 or 1"),
        ([0, 1], [0.1, float("nan")], "NaN"),
        ([[0, 1]], [[0.1, 0.2]], "one-dimensional"),
    ],
)
def test_invalid_inputs_raise(
    fn: Callable[[Any, Any], object], labels: Any, scores: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        fn(labels, scores)


# --- plots ------------------------------------------------------------------------------------


def test_write_curves_writes_two_pngs(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(3)
    labels = (rng.random(500) < 0.1).astype(int)
    scores = rng.random(500) + 0.5 * labels
    roc_png, pr_png = tmp_path / "a" / "roc.png", tmp_path / "b" / "c" / "pr.png"
    write_curves(labels, scores, roc_png, pr_png, "Site H33010000")
    for png in (roc_png, pr_png):
        data = png.read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        width, height = struct.unpack(">II", data[16:24])  # IHDR
        assert (width, height) == (600, 500)


def test_import_does_not_load_matplotlib() -> None:
    code = "import sys, fedrisk.models.metrics; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_histograms_summed_over_nodes_give_the_union_curves() -> None:
    from fedrisk.models.metrics import histogram_ap, histogram_auc, score_histograms

    rng = np.random.default_rng(7)
    labels = (rng.random(30_000) < 0.05).astype(np.int64)
    scores = np.clip(rng.normal(0.3 + 0.3 * labels, 0.15), 0, 1)
    parts = np.array_split(np.arange(len(labels)), 3)  # three nodes
    pos = neg = np.zeros(1000, np.int64)
    for part in parts:
        p, n = score_histograms(labels[part], scores[part])
        pos, neg = pos + p, neg + n
    assert pos.sum() == labels.sum() and neg.sum() == (labels == 0).sum()
    # Binning to 1/1000 moves the areas very little …
    assert abs(histogram_auc(pos, neg) - roc_auc(labels, scores)) < 1e-3
    assert abs(histogram_ap(pos, neg) - average_precision(labels, scores)) < 5e-3
    # … and scores already on the bin grid give exactly the same areas.
    grid = np.floor(scores * 1000) / 1000
    p, n = score_histograms(labels, grid)
    assert histogram_auc(p, n) == pytest.approx(roc_auc(labels, grid), abs=1e-12)
    assert histogram_ap(p, n) == pytest.approx(average_precision(labels, grid), abs=1e-12)


def test_histograms_refuse_scores_outside_the_unit_interval_and_one_class() -> None:
    from fedrisk.models.metrics import histogram_auc, score_histograms

    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        score_histograms([0, 1], [0.2, 1.5])
    with pytest.raises(ValueError, match="both"):
        histogram_auc(np.zeros(10, np.int64), np.ones(10, np.int64))
