"""Federated LightGBM bagging: every node boosts a few trees, every node assembles the average.

The scheme, one round:

1. Every node boosts ``k`` new trees on its own rows with :func:`train_trees`, starting from the
   current global model: the global model's raw score is the rows' initial score, so the new
   trees fit the gradients *of the global model* on that node's data.
2. Only the new trees leave the node (sealed by the transport, elsewhere); a contribution is a
   complete LightGBM model text holding just those trees, so the receiver can check it first.
3. Every node calls :func:`merge` with the same global model and the same contributions in the
   same order, and gets the same bytes: the global trees, then each contribution's trees with
   their outputs divided by ``M``, the number of contributions that hold trees. The new raw
   score is therefore ``global_raw + (1/M) * sum_i contribution_raw_i``.

A node whose rows hold a single class abstains: its contribution has LightGBM's header and no
trees (LightGBM's binary objective learns nothing from one class, and in the first round it
would put the class's log-odds, clipped to ±34.5, in the node's first tree). It still travels,
so every node sees the same round, but it is not counted in ``M``.

Scaling by ``1/M`` is also what makes the first round right. With no global model, LightGBM
folds each node's average label (as log-odds, ``boost_from_average``) into that node's first
tree; appended as they are, ``M`` first trees would count a starting score ``M`` times. Divided
by ``M``, they count the mean of the nodes' starting scores once.

What is scaled, and why (LightGBM 4's ``src/io/tree.cpp`` and ``include/LightGBM/tree.h``): a
tree predicts ``leaf_value`` alone, so that is what must be divided; ``internal_value`` is
divided too, so the tree is what LightGBM's own ``Tree::Shrinkage(1/M)`` would make of it, and
so is ``shrinkage=``, because ``Booster.refit`` multiplies refitted leaf outputs by it (left as
it was, a refit would step ``M`` times as far as the merged trees do). Counts, weights (hessian
sums) and gains are statistics of the data, not outputs, and stay. Linear trees would need
``leaf_const`` and ``leaf_coeff`` scaled as well, and categorical splits index bitsets that
would need checking of their own; both are refused.

What a tree reveals about a node's rows, and why contributions travel sealed:

- ``threshold``: the split points, midpoints between neighbouring values of the node's own
  columns — close to real claim values;
- ``leaf_count`` and ``internal_count``: how many of the node's rows fall in each region
  (TreeSHAP, hence ``pred_contrib`` and the scoring reasons, needs them, so they stay);
- ``leaf_value``, ``leaf_weight``, ``split_gain``: label statistics of each region; the first
  round's first tree carries the node's fraud base rate (its average log-odds) outright.

Sealing protects contributions from outsiders and the coordinator, not from the other nodes:
the merged model appends the contributions in order, so any participant can tell which trees
came from which node and undo the ``1/M``. The header's ``feature_infos`` (each column's
minimum and maximum — single records' values) is not needed to predict, so
:func:`train_trees` replaces it with ``none`` before the trees leave the node.

Tree counts: a contribution holds ``k`` trees for a binary model (``k`` per class otherwise;
fewer only if LightGBM stops because no split meets its limits, none when abstaining), and
:func:`merge` appends all of them, so a round adds ``M * k`` trees to the global model, not
``k``. LightGBM's ``feature_importances`` and ``parameters`` sections are not carried over.

Deterministic output: :func:`merge` is a pure function of its inputs — text in, text out, with
floats printed by ``repr`` (exact round trip) — so nodes that pass the same global model and the
same contributions *in the same order* get byte-identical models. Callers must therefore order
contributions canonically, e.g. by node id.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import lightgbm as lgb
import numpy as np
from lightgbm.basic import LightGBMError
from numpy.typing import ArrayLike, NDArray

from fedrisk.models.errors import FedriskError

CENTRAL_MIN_LEAF = 20
DEFAULT_PARAMS: dict[str, object] = {
    "objective": "binary",
    "learning_rate": 0.1,
    "num_leaves": 31,
    "min_data_in_leaf": CENTRAL_MIN_LEAF,
    "deterministic": True,
    # LightGBM's advice with ``deterministic``: fix the histogram layout rather than timing it.
    "force_col_wise": True,
    "num_threads": 1,
    "verbose": -1,
}

MIN_LEAF_FLOOR = 2  # a leaf value is never one row's own gradient


def member_params(members: int) -> dict[str, object]:
    """Parameters for a node of a federation of ``members``: each node sees about 1/M of the
    rows, so its smallest leaf is the central one divided by M. With 20 rows a leaf, five
    nodes of ~100 fraud cases each could not isolate a pattern that central training finds on
    the union, and bagging trailed by 0.02 AUC on generated claims; with 20/M it matches (see
    ``bench/federated_auc.py``). The leaves are seen by members only (the trees travel sealed)."""
    minimum = CENTRAL_MIN_LEAF
    return {"min_data_in_leaf": max(MIN_LEAF_FLOOR, minimum // max(1, members))}


# The lines LightGBM 4 writes for a non-linear tree; anything else is refused, so a peer cannot
# smuggle in lines that LightGBM's parser (22 lines at most per tree) would read differently.
_PER_LEAF = ("leaf_value", "leaf_weight", "leaf_count")
_PER_NODE = (
    "split_feature",
    "split_gain",
    "threshold",
    "decision_type",
    "left_child",
    "right_child",
    "internal_value",
    "internal_weight",
    "internal_count",
)
_TREE_KEYS = frozenset({"num_leaves", "num_cat", "is_linear", "shrinkage", *_PER_LEAF, *_PER_NODE})
_SCALED = ("leaf_value", "internal_value", "shrinkage")
_REQUIRED_HEADER = (
    "version",
    "num_class",
    "num_tree_per_iteration",
    "label_index",
    "max_feature_idx",
    "feature_names",
    "feature_infos",
)
# Compared first so that the message names the most telling disagreement.
_COMPARED_FIRST = ("num_class", "num_tree_per_iteration", "objective", "max_feature_idx")
_NOT_COMPARED = frozenset({"feature_infos"})
_LABELS = {"max_feature_idx": "feature count (max_feature_idx)", "feature_names": "feature names"}
# Keys whose value may itself hold '=' (LightGBM accepts exactly these two).
_MAY_HOLD_EQUALS = frozenset({"feature_names", "monotone_constraints"})
# LightGBM ends a line at '\r' or '\n', nothing else (str.splitlines would split on more).
_LINE_BREAK = re.compile(r"\r\n|\r|\n")

Pairs = tuple[tuple[str, str], ...]
Header = tuple[tuple[str, str | None], ...]  # None: a bare line such as ``tree``


class BaggingError(FedriskError, ValueError):
    """Trees that cannot be trained or merged; the message names the input and the reason."""


@dataclass(frozen=True)
class _Model:
    """A model text split into its header lines and its trees, both as (key, value) pairs."""

    header: Header
    trees: tuple[Pairs, ...]

    def field(self, key: str) -> str:
        return dict(self.header).get(key) or ""

    @property
    def features(self) -> int:
        return int(self.field("max_feature_idx")) + 1


def train_trees(
    global_model: str | None,
    features: ArrayLike,
    labels: ArrayLike,
    trees: int,
    params: Mapping[str, object] | None = None,
    feature_names: Sequence[str] | None = None,
    seed: int = 0,
) -> str:
    """This node's contribution: ``trees`` new trees boosted on its rows from ``global_model``.

    ``params`` override :data:`DEFAULT_PARAMS`; ``seed`` and the number of trees override
    ``params``. The result is a loadable model text holding only the new trees, with
    ``feature_infos`` blanked. Rows of a single class make the node abstain (see the module
    notes): the result then holds LightGBM's header and no trees.
    """
    x, y = _local_rows(features, labels)
    if trees < 1:
        raise BaggingError(f"trees must be at least 1, not {trees}")
    base = None if global_model is None else _parse(global_model, "the global model")
    names = _names_for(base, feature_names, x.shape[1])
    init_score = None
    if global_model is not None:
        # only now, once _parse has checked what LightGBM's parser would read out of bounds
        init_score = np.asarray(
            lgb.Booster(model_str=global_model).predict(x, raw_score=True), np.float64
        )
    config = {**DEFAULT_PARAMS, **(params or {}), "seed": seed, "num_iterations": trees}
    dataset = lgb.Dataset(x, y, init_score=init_score, feature_name=names, free_raw_data=True)
    booster = lgb.train(config, dataset)
    new = _blank_infos(_parse(booster.model_to_string(), "the new trees"))
    if np.unique(y).size < 2:
        new = _Model(new.header, ())  # abstain, keeping the header the others must agree with
    return _render(new)


def merge(global_model: str | None, contributions: Sequence[str]) -> str:
    """The next global model: ``global_model``'s trees, then every contribution's, scaled by 1/M.

    ``M`` counts the contributions that hold trees (an abstaining node's holds none). The
    result is byte-identical for identical inputs in identical order, so order contributions
    canonically (e.g. by node id). Raises :class:`BaggingError` for no contributions, for only
    abstentions in the first round, for a malformed contribution, or for one that disagrees
    with the others (or with the global model) on features, objective, classes or any other
    header line but ``feature_infos``.
    """
    if not contributions:
        raise BaggingError("no contributions to merge: a round needs at least one")
    parts = [_parse(text, f"contribution {i}") for i, text in enumerate(contributions)]
    base = None if global_model is None else _parse(global_model, "the global model")
    reference = parts[0] if base is None else base
    for i, part in enumerate(parts):
        _check_agrees(reference, part, f"contribution {i}")
    voters = [part for part in parts if part.trees]
    if base is None and not voters:
        raise BaggingError("every contribution abstained: there is no first model to start from")
    scaled = tuple(_scaled(tree, len(voters)) for part in voters for tree in part.trees)
    merged = _Model(reference.header, (base.trees if base else ()) + scaled)
    text = _render(merged)
    _check_loads(text, len(merged.trees))
    return text


def tree_count(model: str) -> int:
    """The number of trees in a model text (all classes, all iterations)."""
    return len(_parse(model, "the model").trees)


def feature_names(model: str) -> list[str]:
    """The feature names of a model text, in column order."""
    return _feature_list(_parse(model, "the model"))


def _local_rows(
    features: ArrayLike, labels: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y) or len(y) == 0:
        raise BaggingError(
            f"features must be rows × columns and labels one per row; got {x.shape} and {y.shape}"
        )
    return x, y


def _names_for(
    base: _Model | None, names: Sequence[str] | None, columns: int
) -> list[str] | Literal["auto"]:
    expected = None if base is None else _feature_list(base)
    if names is not None and expected is not None and list(names) != expected:
        raise BaggingError("feature_names differ from the global model's feature names")
    chosen = list(names) if names is not None else expected
    if chosen is not None and len(chosen) != columns:
        raise BaggingError(f"the rows have {columns} columns for {len(chosen)} feature names")
    return "auto" if chosen is None else chosen


def _parse(text: str, what: str) -> _Model:
    lines = _LINE_BREAK.split(text)
    start = next((i for i, line in enumerate(lines) if line.startswith("Tree=")), len(lines))
    model = _Model(_parse_header(lines[:start], what), _parse_trees(lines[start:], what))
    per_iteration = int(model.field("num_tree_per_iteration"))
    if len(model.trees) % per_iteration:
        raise BaggingError(
            f"{what}: {len(model.trees)} trees is not a whole number of iterations "
            f"of {per_iteration} trees"
        )
    for i, tree in enumerate(model.trees):
        if len(dict(tree)) != len(tree):
            raise BaggingError(f"{what}, tree {i}: a line appears twice")
        _check_tree(dict(tree), model.features, f"{what}, tree {i}")
    return model


def _parse_header(lines: list[str], what: str) -> Header:
    # tree_sizes holds byte offsets into the text, which no longer hold once trees move
    kept = [line for line in lines if line and not line.startswith("tree_sizes=")]
    pairs = [_header_pair(line, what) for line in kept]
    keys = [key for key, _ in pairs]
    missing = [key for key in _REQUIRED_HEADER if key not in keys]
    if missing:
        raise BaggingError(f"{what} is not a LightGBM model text (no {', '.join(missing)})")
    if len(set(keys)) != len(keys):
        raise BaggingError(f"{what}: a header line appears twice")
    header = {key: value or "" for key, value in pairs}
    if "average_output" in header:
        raise BaggingError(f"{what} averages its trees (random forest): only gbdt can be merged")
    for key in ("num_class", "num_tree_per_iteration", "max_feature_idx"):
        if _int(header[key], f"{what}, {key}") < (0 if key == "max_feature_idx" else 1):
            raise BaggingError(f"{what}: {key} is out of range")
    width = int(header["max_feature_idx"]) + 1
    for key in ("feature_names", "feature_infos"):
        if len(_words(header[key])) != width:
            raise BaggingError(f"{what}: {key} does not list {width} features")
    return tuple(pairs)


def _header_pair(line: str, what: str) -> tuple[str, str | None]:
    key, sep, value = line.partition("=")
    if "=" in value and key not in _MAY_HOLD_EQUALS:
        raise BaggingError(f"{what}: malformed header line for {key!r}")
    return key, value if sep else None


def _parse_trees(lines: list[str], what: str) -> tuple[Pairs, ...]:
    trees: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] | None = None
    for line in lines:
        if current is not None and line:
            key, sep, value = line.partition("=")
            if not sep:
                raise BaggingError(f"{what}, tree {len(trees) - 1}: line without '='")
            current.append((key, value))
        elif line.startswith("Tree="):
            current = []
            trees.append(current)
        elif line:
            break  # "end of trees": LightGBM stops reading trees at the first other line
        else:
            current = None
    return tuple(tuple(tree) for tree in trees)


def _check_tree(tree: dict[str, str], features: int, where: str) -> None:
    if tree.get("is_linear", "0") != "0":
        raise BaggingError(f"{where} is a linear tree: linear trees cannot be merged")
    if tree.get("num_cat", "0") != "0":
        raise BaggingError(f"{where} has categorical splits (num_cat): they cannot be merged")
    unknown = sorted(tree.keys() - _TREE_KEYS)
    missing = [key for key in ("num_leaves", "num_cat", "leaf_value") if key not in tree]
    if unknown or missing:
        raise BaggingError(f"{where}: unexpected lines {unknown}, missing lines {missing}")
    leaves = _int(tree["num_leaves"], where)
    if leaves < 1 or len(_floats(tree["leaf_value"], where)) != leaves:
        raise BaggingError(f"{where}: num_leaves and leaf_value disagree")
    if leaves > 1:
        _check_arrays(tree, leaves, where)
        _check_shape(tree, leaves, features, where)


def _check_arrays(tree: dict[str, str], leaves: int, where: str) -> None:
    for key in _PER_LEAF + _PER_NODE:
        if key in tree:
            want = leaves if key in _PER_LEAF else leaves - 1
            # LightGBM writes an infinite threshold when a split sends every finite value left.
            values = _floats(tree[key], where, infinite=key == "threshold")
            if len(values) != want:
                raise BaggingError(f"{where}: {key} should hold {want} values")


def _check_shape(tree: dict[str, str], leaves: int, features: int, where: str) -> None:
    """Reject what LightGBM would read out of bounds or loop on: it checks neither."""
    if any(key not in tree for key in ("split_feature", "threshold", "left_child", "right_child")):
        raise BaggingError(f"{where}: a tree with splits lacks split lines")
    left, right = _ints(tree["left_child"], where), _ints(tree["right_child"], where)
    expected = sorted([*range(1, leaves - 1), *(~leaf for leaf in range(leaves))])
    if sorted(left + right) != expected:
        raise BaggingError(f"{where}: left_child/right_child do not form a tree")
    reached, stack = 0, [0]
    while stack:
        node = stack.pop()
        reached += 1
        stack.extend(child for child in (left[node], right[node]) if child >= 0)
    if reached != leaves - 1:
        raise BaggingError(f"{where}: some nodes are not reachable from the root")
    if any(not 0 <= f < features for f in _ints(tree["split_feature"], where)):
        raise BaggingError(f"{where}: split_feature names a column the model does not have")
    # Bit 0 marks a categorical split (impossible without num_cat); bits 2-3: missing type 0-2.
    if any(d < 0 or d & 1 or d >> 2 > 2 for d in _ints(tree.get("decision_type", ""), where)):
        raise BaggingError(f"{where}: invalid decision_type")


def _check_agrees(reference: _Model, other: _Model, what: str) -> None:
    ours, theirs = dict(reference.header), dict(other.header)  # a bare line's value is None
    rest = sorted((ours.keys() | theirs.keys()) - set(_COMPARED_FIRST) - _NOT_COMPARED)
    for key in (*_COMPARED_FIRST, *rest):
        if ours.get(key) != theirs.get(key):
            raise BaggingError(
                f"{what} disagrees on {_LABELS.get(key, key)}: "
                f"{_show(theirs.get(key))} where the model has {_show(ours.get(key))}"
            )


def _show(value: str | None) -> str:
    if value is None:
        return "nothing"
    return repr(value if len(value) <= 80 else value[:77] + "...")


def _scaled(tree: Pairs, contributions: int) -> Pairs:
    return tuple(
        (key, _divided(value, contributions) if key in _SCALED else value) for key, value in tree
    )


def _divided(values: str, by: int) -> str:
    # repr is the shortest text that reads back as the same double, on every platform
    return " ".join(repr(float(value) / by) for value in values.split())


def _blank_infos(model: _Model) -> _Model:
    blank = " ".join(["none"] * model.features)
    header = tuple((k, blank if k == "feature_infos" else v) for k, v in model.header)
    return _Model(header, model.trees)


def _render(model: _Model) -> str:
    """LightGBM's own layout, minus ``tree_sizes`` and the sections after the trees."""
    lines = [key if value is None else f"{key}={value}" for key, value in model.header]
    lines.append("")
    for i, tree in enumerate(model.trees):
        lines.append(f"Tree={i}")
        lines.extend(f"{key}={value}" for key, value in tree)
        lines.extend(("", ""))
    lines.append("end of trees")
    return "\n".join(lines) + "\n"


def _check_loads(text: str, trees: int) -> None:
    try:
        loaded = lgb.Booster(model_str=text).num_trees()
    except LightGBMError as error:
        raise BaggingError(f"LightGBM refuses the merged model: {error}") from error
    if loaded != trees:
        raise BaggingError(f"LightGBM reads {loaded} trees of the {trees} merged")


def _feature_list(model: _Model) -> list[str]:
    return _words(model.field("feature_names"))


def _words(line: str) -> list[str]:
    # as LightGBM's Common::Split: runs of spaces part words, nothing else does
    return [word for word in line.split(" ") if word]


def _int(value: str, where: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise BaggingError(f"{where}: {value!r} is not an integer") from None


def _ints(values: str, where: str) -> list[int]:
    return [_int(value, where) for value in values.split()]


def _floats(values: str, where: str, infinite: bool = False) -> list[float]:
    try:
        parsed = [float(value) for value in values.split()]
    except ValueError:
        raise BaggingError(f"{where}: a value is not a number") from None
    allowed = (lambda v: not math.isnan(v)) if infinite else math.isfinite
    if not all(allowed(value) for value in parsed):
        raise BaggingError(f"{where}: a value is not finite")
    return parsed
