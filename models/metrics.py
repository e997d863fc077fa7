"""How well a risk score separates fraudulent settlements from clean ones.

Every function takes the true labels (1 = fraudulent, 0 = clean) and the model's risk scores
(higher = riskier) of the same settlements. What the numbers mean for a supervisor:

* **ROC AUC** (area under the ROC curve): the probability that a randomly chosen fraudulent
  settlement scores higher than a randomly chosen clean one (a tie counts as half). 0.5 is a
  coin toss, 1.0 a perfect ranking. It does not depend on how rare fraud is, which also makes it
  look flattering when fraud is rare.
* **AP** (average precision, the area under the precision–recall curve): the share of flagged
  settlements that really are fraudulent, averaged over all recall levels (the shares of fraud
  caught). A random score gets the fraud rate itself, so AP is the better number when fraud is
  rare: it tells how much of the inspectors' work a ranking would waste.
* **Best-F1 threshold**: the score at or above which flagging settlements balances precision and
  recall best (the highest F1).

Computations are vectorised with numpy (one sort, cumulative sums) and follow scikit-learn's
conventions, including ties: settlements with equal scores are flagged together, as one step of
a curve. ``write_curves`` draws both curves as PNG files with matplotlib, imported only there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Curve:
    """Points of a curve, in drawing order (read-only arrays of equal length)."""

    x: FloatArray  # e.g. false-positive rate, or recall
    y: FloatArray  # e.g. true-positive rate, or precision


@dataclass(frozen=True)
class _Counts:
    """Counts at each distinct score threshold, highest threshold first.

    At ``thresholds[i]``, flagging every settlement with a score >= it flags ``tps[i]``
    fraudulent (true positives) and ``fps[i]`` clean ones (false positives).
    """

    thresholds: FloatArray
    tps: IntArray
    fps: IntArray

    @property
    def positives(self) -> int:
        return int(self.tps[-1])

    @property
    def negatives(self) -> int:
        return int(self.fps[-1])


def _counts(labels: npt.ArrayLike, scores: npt.ArrayLike) -> _Counts:
    """Check the inputs, sort once by decreasing score and count hits per distinct threshold."""
    y = np.asarray(labels)
    s = np.asarray(scores)
    if y.ndim != 1 or s.ndim != 1:
        raise ValueError(
            f"labels and scores must be one-dimensional, got shapes {y.shape} and {s.shape}"
        )
    if len(y) != len(s):
        raise ValueError(f"labels and scores differ in length: {len(y)} labels, {len(s)} scores")
    if len(y) == 0:
        raise ValueError("labels and scores are empty")
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_):
        raise ValueError(f"labels must be 0 or 1, got values of type {y.dtype}")
    is_pos = y == 1
    if not (is_pos | (y == 0)).all():
        bad = y[~(is_pos | (y == 0))][:3]
        raise ValueError(f"labels must be 0 or 1, got e.g. {bad.tolist()}")
    if not np.issubdtype(s.dtype, np.number) or s.dtype.kind == "c":
        raise ValueError(f"scores must be real numbers, got values of type {s.dtype}")
    s = s.astype(np.float64, copy=False)
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    n_pos = int(np.count_nonzero(is_pos))
    if n_pos in (0, len(y)):
        which = "fraudulent (1)" if n_pos else "clean (0)"
        raise ValueError(f"all {len(y)} labels are {which}: both classes are needed")

    order = np.argsort(-s, kind="mergesort")
    s_sorted = s[order]
    hits = is_pos[order].astype(np.int64)
    # Last index of each run of equal scores (`!=` rather than np.diff, which makes inf - inf nan).
    last = np.append(np.flatnonzero(s_sorted[1:] != s_sorted[:-1]), len(s_sorted) - 1)
    tps = np.cumsum(hits)[last]
    fps = (last + 1) - tps
    return _Counts(thresholds=s_sorted[last], tps=tps, fps=fps)


HISTOGRAM_BINS = 1000


def score_histograms(
    labels: npt.ArrayLike, scores: npt.ArrayLike, bins: int = HISTOGRAM_BINS
) -> tuple[IntArray, IntArray]:
    """Counts of fraudulent and of clean settlements per score bin (``bins`` equal bins of
    [0, 1]): all a node shares for a federated ROC or PR curve, never a settlement's own score.
    Summed over nodes, they give the curves of the union with every score rounded down to its
    bin (``histogram_auc``, ``histogram_ap``)."""
    c = _counts(labels, scores)
    if c.thresholds[0] > 1.0 or c.thresholds[-1] < 0.0:
        raise ValueError("scores must lie in [0, 1] to be binned")
    index = np.minimum((c.thresholds * bins).astype(np.int64), bins - 1)
    positives = np.zeros(bins, np.int64)
    negatives = np.zeros(bins, np.int64)
    np.add.at(positives, index, np.diff(c.tps, prepend=0))
    np.add.at(negatives, index, np.diff(c.fps, prepend=0))
    return positives, negatives


def histogram_auc(positives: npt.ArrayLike, negatives: npt.ArrayLike) -> float:
    """ROC AUC from summed :func:`score_histograms` (scores in one bin count as ties)."""
    return _auc(_binned(positives, negatives))


def histogram_ap(positives: npt.ArrayLike, negatives: npt.ArrayLike) -> float:
    """Average precision from summed :func:`score_histograms`."""
    return _ap(_binned(positives, negatives))


def _binned(positives: npt.ArrayLike, negatives: npt.ArrayLike) -> _Counts:
    pos = np.asarray(positives, np.int64)[::-1]  # highest bin first, as thresholds go
    neg = np.asarray(negatives, np.int64)[::-1]
    if pos.shape != neg.shape or pos.ndim != 1 or (pos < 0).any() or (neg < 0).any():
        raise ValueError("histograms must be two non-negative count vectors of one length")
    used = np.flatnonzero(pos + neg)
    tps, fps = np.cumsum(pos)[used], np.cumsum(neg)[used]
    if tps.size == 0 or tps[-1] == 0 or fps[-1] == 0:
        raise ValueError("the histograms need both fraudulent and clean settlements")
    edges = (len(pos) - 1 - used) / len(pos)
    return _Counts(thresholds=edges.astype(np.float64), tps=tps, fps=fps)


def _roc(c: _Counts) -> Curve:
    fpr = np.concatenate(([0.0], c.fps / c.negatives))
    tpr = np.concatenate(([0.0], c.tps / c.positives))
    return _frozen_curve(fpr, tpr)


def _pr(c: _Counts) -> Curve:
    precision = c.tps / (c.tps + c.fps)
    recall = c.tps / c.positives
    return _frozen_curve(
        np.concatenate((recall[::-1], [0.0])), np.concatenate((precision[::-1], [1.0]))
    )


def _auc(c: _Counts) -> float:
    # Trapezoids of the ROC curve in integer counts, divided once: exact up to the last rounding.
    doubled = np.sum(np.diff(c.fps, prepend=0) * (c.tps + np.concatenate(([0], c.tps[:-1]))))
    return float(int(doubled) / (2 * c.positives * c.negatives))


def _ap(c: _Counts) -> float:
    precision = c.tps / (c.tps + c.fps)
    return float(np.sum(np.diff(c.tps, prepend=0) * precision) / c.positives)


def _frozen_curve(x: FloatArray, y: FloatArray) -> Curve:
    x.flags.writeable = False
    y.flags.writeable = False
    return Curve(x=x, y=y)


def roc_curve(labels: npt.ArrayLike, scores: npt.ArrayLike) -> Curve:
    """The ROC curve: x = false-positive rate, y = true-positive rate (recall).

    One point per distinct score, from the highest threshold down, after a first point (0, 0);
    the last point is (1, 1). Equal scores make one step (a diagonal segment), as in
    scikit-learn's ``roc_curve`` (without ``drop_intermediate``, so collinear points are kept).
    """
    return _roc(_counts(labels, scores))


def pr_curve(labels: npt.ArrayLike, scores: npt.ArrayLike) -> Curve:
    """The precision–recall curve: x = recall, y = precision.

    As scikit-learn's ``precision_recall_curve``: one point per distinct score, ordered from the
    lowest threshold (recall 1, precision = fraud rate) to the highest, so recall *decreases*
    along the arrays; a last point (recall 0, precision 1) closes the curve. Drawn as a step
    function (``steps-post`` in this order), its area is ``average_precision``.
    """
    return _pr(_counts(labels, scores))


def roc_auc(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the ROC curve (trapezoids).

    Equals the probability that a random fraudulent settlement scores above a random clean
    one, ties counted 1/2 (the Mann–Whitney U statistic divided by positives × negatives).
    """
    return _auc(_counts(labels, scores))


def average_precision(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Average precision, as scikit-learn's ``average_precision_score``.

    ``sum over distinct thresholds n of (R_n - R_(n-1)) * P_n`` (R recall, P precision, R_0 = 0):
    precision averaged over the recall gained at each threshold, without interpolation.
    """
    return _ap(_counts(labels, scores))


def best_f1_threshold(labels: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """The score threshold maximising F1 when settlements with ``score >= threshold`` are flagged.

    Only observed scores are candidates. Among equal F1 values the higher threshold wins
    (fewer settlements to inspect).
    """
    return _best_f1(_counts(labels, scores))


def histogram_best_f1_threshold(positives: npt.ArrayLike, negatives: npt.ArrayLike) -> float:
    """:func:`best_f1_threshold` from summed :func:`score_histograms`: a bin's lower edge."""
    return _best_f1(_binned(positives, negatives))


def _best_f1(c: _Counts) -> float:
    # F1 = 2TP / (2TP + FP + FN) = 2TP / (TP + FP + P); exact integers, so equal ratios tie exactly.
    f1 = 2 * c.tps / (c.tps + c.fps + c.positives)
    return float(c.thresholds[int(np.argmax(f1))])  # argmax: first = highest threshold


def write_curves(
    labels: npt.ArrayLike, scores: npt.ArrayLike, roc_png: Path, pr_png: Path, title: str
) -> None:
    """Draw the ROC curve to ``roc_png`` and the precision–recall curve to ``pr_png`` (PNG).

    The ROC plot shows the chance diagonal and the AUC, the PR plot the fraud rate (the precision
    of a random ranking) as a baseline and the AP. Parent folders are created.
    """
    _draw(_counts(labels, scores), roc_png, pr_png, title)  # inputs checked before matplotlib


def write_histogram_curves(
    positives: npt.ArrayLike, negatives: npt.ArrayLike, roc_png: Path, pr_png: Path, title: str
) -> None:
    """:func:`write_curves` from summed :func:`score_histograms` (a federation's curves)."""
    _draw(_binned(positives, negatives), roc_png, pr_png, title)


def _draw(c: _Counts, roc_png: Path, pr_png: Path, title: str) -> None:
    from matplotlib.figure import Figure  # lazy: matplotlib is slow to import

    roc, pr = _roc(c), _pr(c)
    rate = c.positives / (c.positives + c.negatives)

    fig = Figure(figsize=(6, 5), dpi=100)
    ax = fig.add_subplot()
    ax.plot(roc.x, roc.y, color="C0", label=f"AUC = {_auc(c):.3f}")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="Chance (AUC = 0.5)")
    ax.set(
        xlim=(-0.01, 1.01),
        ylim=(-0.01, 1.01),
        xlabel="False-positive rate (share of clean settlements flagged)",
        ylabel="True-positive rate (share of fraud caught)",
        title=f"{title}: ROC curve",
    )
    ax.legend(loc="lower right")
    _save(fig, roc_png)

    fig = Figure(figsize=(6, 5), dpi=100)
    ax = fig.add_subplot()
    ax.plot(pr.x, pr.y, color="C1", drawstyle="steps-post", label=f"AP = {_ap(c):.3f}")
    ax.axhline(rate, color="grey", linestyle="--", label=f"Fraud rate = {rate:.3f}")
    ax.set(
        xlim=(-0.01, 1.01),
        ylim=(-0.01, 1.01),
        xlabel="Recall (share of fraud caught)",
        ylabel="Precision (share of flagged that is fraud)",
        title=f"{title}: precision–recall curve",
    )
    ax.legend(loc="center left")  # a good model hugs the top and the right
    _save(fig, pr_png)


def _save(fig: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    fig.clear()


def write_rounds_plot(
    rounds: list[int], aucs: list[float], pr_aucs: list[float], png: Path, title: str
) -> None:
    """The federation's held-out AUC and AP after each round, as one PNG (a training report)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot()
    ax.plot(rounds, aucs, marker="o", color="C0", label="ROC AUC")
    ax.plot(rounds, pr_aucs, marker="s", color="C1", label="AP (PR-AUC)")
    ax.set(
        xlabel="trees of rounds 1 … n (the final model on the right)",
        ylabel="on the members' held-out rows",
        ylim=(0.0, 1.01),
        title=title,
    )
    ax.set_xticks(rounds)
    ax.legend(loc="lower right")
    _save(fig, png)
