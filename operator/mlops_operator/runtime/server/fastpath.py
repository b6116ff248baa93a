"""Exact fast predict paths: the same numbers as scikit-learn, without its per-call overhead.

scikit-learn validates its input on every call and runs a forest's trees one by one through
joblib: a 100-tree forest spends ~3-5 ms per call whatever the rows, of which the trees' own
work is ~0.3 ms. Here the fitted model is compiled at load into flat NumPy arrays and
evaluated with the operations scikit-learn itself performs, in the same order and dtypes
(float32 inputs compared with float64 thresholds, leaf values summed tree after tree, one
matmul and the same link function), so the results are the same bits.

"Exact or not at all": a compiled path serves only after it has been proved equal to
scikit-learn's on the model's reference rows and on random rows inside the training ranges
(:func:`choose`); anything unsupported, or any difference, keeps scikit-learn's path and
says why. At predict time, input the compiled path does not model (NaN where the path does
not take it, values a float32 cannot hold) goes to scikit-learn, which answers (or fails)
as it always did.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from mlops_operator.runtime.server.protocol import Rows

logger = logging.getLogger(__name__)

SKLEARN: Final = "sklearn"
"""The name of scikit-learn's own path, when no compiled path serves."""

Outputs = tuple[npt.NDArray[Any], Rows | None]
"""Predictions and, when asked for and available, class probabilities."""

Predict = Callable[[Rows, bool], Outputs]
"""``(rows, with_proba) -> (predictions, proba or None)``, the server's predict signature."""

WALK_COST_US: Final = (30.0, 0.006)
"""Walking all trees at once with NumPy, one level per step: about ``a + b × rows × trees ×
depth`` µs (measured on 2 cores, forests of 20 to 300 trees, depth 8 to 25)."""

TREE_BY_TREE_COST_US: Final = (2.0, 0.02)
"""Tree by tree through scikit-learn's own Cython traversal (which releases the GIL): about
``trees × (a + b × rows)`` µs. The cheaper of the two walks serves each batch; both are
exact. A 100-tree forest of depth 11 breaks even at ~32 rows."""

WALK_CELLS: Final = 1 << 20
"""At most this many (row, tree) pairs are walked at once (memory: ~50 bytes a pair)."""

FLAT_NODES: Final = 1_000_000
"""Ensembles with more nodes than this are not copied into one flat table (~50 bytes a
node): they are walked tree by tree only."""

_RANDOM_ROWS: Final = 256
_THRESHOLD_ROWS: Final = 64


class Unsupported(Exception):
    """The estimator has no exact fast path; the message says why."""


class _HandOff(Exception):
    """Input the compiled path does not model: scikit-learn answers it (or fails on it)."""


class Compiled(Protocol):
    """A compiled model: what scikit-learn's predict and predict_proba compute."""

    name: str
    takes_nan: bool
    """Whether NaN inputs are evaluated as scikit-learn does; else they go to scikit-learn."""
    has_proba: bool

    def run(self, x: Rows, with_proba: bool) -> Outputs:
        """The outputs for ``x`` (float64, C-contiguous, finite or NaN)."""
        ...

    def thresholds(self) -> dict[int, npt.NDArray[np.float64]]:
        """Split thresholds by feature index, where outputs change: rows that sit on them
        put the comparisons to the test."""
        ...


@dataclass(frozen=True)
class Choice:
    """The predict path a model is served with."""

    path: str
    """``sklearn`` or the compiled path's name (e.g. ``forest``, ``pipeline+linear``)."""
    reason: str
    """Why scikit-learn's path serves; empty when a compiled path does."""
    predict: Predict | None
    """The compiled path (with the NaN and float32 range hand-off), or ``None``."""


# ---------------------------------------------------------------------------- trees


@dataclass(frozen=True)
class _Nodes:
    """One fitted tree's nodes, as scikit-learn walks them: at a split, NaN goes where
    training sent missing values, else ``value <= threshold`` (in float64) goes left."""

    left: npt.NDArray[np.intp]
    """Left child per node; -1 at a leaf."""
    right: npt.NDArray[np.intp]
    feature: npt.NDArray[np.intp]
    threshold: npt.NDArray[np.float64]
    missing_go_to_left: npt.NDArray[np.bool_]
    value: npt.NDArray[np.float64]
    """``(n_nodes, width)``: the leaf values."""
    depth: int
    leaves: Callable[[Any], npt.NDArray[np.float64]]
    """scikit-learn's own traversal (Cython, without the GIL): rows → ``(n_rows, width)``
    leaf values."""

    @classmethod
    def of_tree(cls, estimator: Any, width: int) -> _Nodes:
        """The nodes of a fitted DecisionTree*/ExtraTree* (``tree_``)."""
        from sklearn.tree import (
            DecisionTreeClassifier,
            DecisionTreeRegressor,
            ExtraTreeClassifier,
            ExtraTreeRegressor,
        )

        kinds = (
            DecisionTreeClassifier,
            DecisionTreeRegressor,
            ExtraTreeClassifier,
            ExtraTreeRegressor,
        )
        if type(estimator) not in kinds:
            raise Unsupported(f"a member {type(estimator).__name__} is not a scikit-learn tree")
        tree = estimator.tree_
        count = int(tree.node_count)
        value = np.asarray(tree.value, dtype=np.float64).reshape(count, -1)[:, :width]
        value = np.ascontiguousarray(value)
        apply = tree.apply

        def leaves(x32: Any) -> npt.NDArray[np.float64]:
            out: npt.NDArray[np.float64] = value.take(apply(x32), axis=0)
            return out

        return cls(
            left=np.asarray(tree.children_left, dtype=np.intp),
            right=np.asarray(tree.children_right, dtype=np.intp),
            feature=np.asarray(tree.feature, dtype=np.intp),
            threshold=np.asarray(tree.threshold, dtype=np.float64),
            missing_go_to_left=np.asarray(tree.missing_go_to_left, dtype=bool),
            value=value,
            depth=int(tree.max_depth),
            leaves=leaves,
        )

    @classmethod
    def of_predictor(cls, predictor: Any, bitsets: Any, index_map: Any) -> _Nodes:
        """The nodes of a HistGradientBoosting* predictor without categorical splits."""
        nodes = predictor.nodes
        if nodes["is_categorical"].any():
            raise Unsupported("categorical splits have no fast path")
        leaf = nodes["is_leaf"].astype(bool)
        predict = predictor.predict

        def leaves(x: Any) -> npt.NDArray[np.float64]:
            out: npt.NDArray[np.float64] = predict(x, bitsets, index_map, 1)[:, None]
            return out

        return cls(
            left=np.where(leaf, -1, nodes["left"].astype(np.intp)),
            right=np.where(leaf, -1, nodes["right"].astype(np.intp)),
            feature=nodes["feature_idx"].astype(np.intp),
            threshold=nodes["num_threshold"].astype(np.float64),
            missing_go_to_left=nodes["missing_go_to_left"].astype(bool),
            value=np.ascontiguousarray(nodes["value"], dtype=np.float64)[:, None],
            depth=int(nodes["depth"].max()),
            leaves=leaves,
        )


class _Trees:
    """Fitted trees, walked tree by tree by scikit-learn's own code, or (unless they are
    too large to copy) all at once through one flat node table."""

    def __init__(self, trees: Sequence[_Nodes], n_features: int) -> None:
        self.trees = list(trees)
        self.n_features = n_features
        self.flat = 1 < len(self.trees) and sum(len(t.left) for t in self.trees) <= FLAT_NODES
        if self.flat:
            self._flatten()

    def _flatten(self) -> None:
        children, features, is_leaf, roots = [], [], [], []
        offset = 0
        for tree in self.trees:
            count = len(tree.left)
            leaf = tree.left == -1
            own = np.arange(count, dtype=np.intp)
            # A leaf points at itself, so walking every tree to the deepest depth is harmless.
            left = np.where(leaf, own, tree.left) + offset
            right = np.where(leaf, own, tree.right) + offset
            children.append(np.column_stack([right, left]).ravel())
            features.append(np.where(leaf, 0, tree.feature))
            is_leaf.append(leaf)
            roots.append(offset)
            offset += count
        self.roots = np.asarray(roots, dtype=np.intp)
        self.feature = np.concatenate(features)
        self.threshold = np.concatenate([t.threshold for t in self.trees])
        self.children = np.concatenate(children)
        self.missing_go_to_left = np.concatenate([t.missing_go_to_left for t in self.trees])
        self.is_leaf = np.concatenate(is_leaf)
        self.value = np.concatenate([t.value for t in self.trees])
        self.depth = max(t.depth for t in self.trees)

    def vectorised(self, rows: int) -> bool:
        """Whether walking all trees at once beats scikit-learn's tree by tree for ``rows``."""
        trees = len(self.trees)
        if not self.flat or rows * trees > WALK_CELLS:
            return False
        walk = WALK_COST_US[0] + WALK_COST_US[1] * rows * trees * self.depth
        return walk < trees * (TREE_BY_TREE_COST_US[0] + TREE_BY_TREE_COST_US[1] * rows)

    def leaf_values(self, x: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """``(n_rows, n_trees, width)``: the leaf value each tree gives each row of ``x``
        (C-contiguous, as the trees read it), all trees walked at once, a level per step."""
        n = x.shape[0]
        flat = x.astype(np.float64).ravel()
        base = (np.arange(n, dtype=np.intp) * self.n_features)[:, None]
        node = np.broadcast_to(self.roots, (n, len(self.roots))).copy()
        holes = bool(np.isnan(flat).any())
        for level in range(self.depth):
            value = flat[base + self.feature[node]]
            left = value <= self.threshold[node]
            if holes:
                left |= np.isnan(value) & self.missing_go_to_left[node]
            node = self.children[2 * node + left]
            if level % 4 == 3 and self.is_leaf[node].all():
                break
        out: npt.NDArray[np.float64] = self.value[node]
        return out

    def thresholds(self) -> dict[int, npt.NDArray[np.float64]]:
        """Split thresholds by feature index."""
        split = [t.left != -1 for t in self.trees]
        feature = np.concatenate([t.feature[s] for t, s in zip(self.trees, split, strict=True)])
        threshold = np.concatenate([t.threshold[s] for t, s in zip(self.trees, split, strict=True)])
        # A split that only separates missing values has an infinite threshold.
        finite = np.abs(threshold) < np.finfo(np.float32).max / 2
        feature, threshold = feature[finite], threshold[finite]
        return {int(f): np.unique(threshold[feature == f]) for f in np.unique(feature).tolist()}


def _sequential_sum(parts: npt.NDArray[np.float64], start: npt.NDArray[np.float64] | None) -> Any:
    """``start + parts[:, 0] + parts[:, 1] + ...`` added left to right, as scikit-learn's
    ``out += tree_output`` loops do (``cumsum`` adds in order; ``sum`` does not), C-ordered."""
    if start is not None:
        parts = np.concatenate([start[:, None, :], parts], axis=1)
        return np.ascontiguousarray(np.cumsum(parts, axis=1)[:, -1, :])
    # scikit-learn starts from zeros: 0.0 + s turns a -0.0 total into 0.0, nothing else.
    return np.cumsum(parts, axis=1)[:, -1, :] + 0.0


class _LeafMean:
    """RandomForest* and ExtraTrees*: the mean of the trees' leaf values; DecisionTree* and
    ExtraTree*: the one tree's leaf value as it is (scikit-learn neither sums nor divides it,
    so neither does this: ``0.0 + v`` would turn a -0.0 into 0.0)."""

    takes_nan = True

    def __init__(self, estimator: Any, classifier: bool, members: Sequence[Any] | None) -> None:
        """``members``: a forest's fitted trees; ``None``: ``estimator`` is one tree."""
        self.name = "tree" if members is None else "forest"
        self.classifier = classifier
        self.has_proba = classifier
        self.n_outputs = int(estimator.n_outputs_)
        if classifier:
            if self.n_outputs != 1:
                raise Unsupported("multi-output classification has no fast path")
            self.classes = np.asarray(estimator.classes_)
            self.width = int(estimator.n_classes_)
        else:
            self.width = self.n_outputs
        self.single = members is None
        fitted = [estimator] if members is None else members
        trees = [_Nodes.of_tree(e, self.width) for e in fitted]
        self.trees = _Trees(trees, int(estimator.n_features_in_))
        self.count = len(trees)

    def run(self, x: Rows, with_proba: bool) -> Outputs:
        x32 = _float32(x)
        if self.single:
            values = self.trees.trees[0].leaves(x32)
        else:
            if self.trees.vectorised(x32.shape[0]):
                values = _sequential_sum(self.trees.leaf_values(x32), None)
            else:
                values = np.zeros((x32.shape[0], self.width), dtype=np.float64)
                for tree in self.trees.trees:
                    values += tree.leaves(x32)
            values /= self.count
        if not self.classifier:
            return (values[:, 0] if self.n_outputs == 1 else values), None
        predictions = self.classes.take(np.argmax(values, axis=1), axis=0)
        return predictions, (values if with_proba else None)

    def thresholds(self) -> dict[int, npt.NDArray[np.float64]]:
        """Split thresholds by feature index."""
        return self.trees.thresholds()


class _GradientBoosting:
    """GradientBoosting*: the init estimator's constant raw prediction plus
    ``learning_rate * leaf value`` of every stage, added stage after stage, then the loss's
    own link."""

    takes_nan = False

    def __init__(self, estimator: Any, classifier: bool) -> None:
        from sklearn.dummy import DummyClassifier, DummyRegressor

        self.name = "gradient-boosting"
        self.loss = estimator._loss
        self.has_proba = classifier
        init = estimator.init_
        if not (isinstance(init, str) and init == "zero") and type(init) not in (
            DummyClassifier,
            DummyRegressor,
        ):
            raise Unsupported(f"the init estimator {type(init).__name__} has no fast path")
        stages = np.asarray(estimator.estimators_)
        self.stages, self.per_stage = stages.shape
        n_features = int(estimator.n_features_in_)
        # The init estimator's prediction does not depend on the row: computed once, on a
        # row of zeros, by scikit-learn's own code.
        self.init = np.asarray(estimator._raw_predict_init(np.zeros((1, n_features))))
        self.scale = float(estimator.learning_rate)
        self.trees = _Trees([_Nodes.of_tree(e, 1) for e in stages.ravel()], n_features)
        self.classes = np.asarray(estimator.classes_) if classifier else None

    def run(self, x: Rows, with_proba: bool) -> Outputs:
        x32 = _float32(x)
        n = x32.shape[0]
        start = np.repeat(self.init, n, axis=0)
        if self.trees.vectorised(n):
            leaves = self.trees.leaf_values(x32).reshape(n, self.stages, self.per_stage)
            raw = _sequential_sum(self.scale * leaves, start)
        else:
            raw = start
            for i, tree in enumerate(self.trees.trees):
                raw[:, i % self.per_stage] += self.scale * tree.leaves(x32)[:, 0]
        if self.classes is None:
            return raw.ravel(), None
        scores = raw.ravel() if raw.shape[1] == 1 else raw
        encoded = (scores >= 0).astype(int) if scores.ndim == 1 else np.argmax(scores, axis=1)
        predictions = self.classes[encoded]
        return predictions, (self.loss.predict_proba(scores) if with_proba else None)

    def thresholds(self) -> dict[int, npt.NDArray[np.float64]]:
        """Split thresholds by feature index."""
        return self.trees.thresholds()


class _HistGradientBoosting:
    """HistGradientBoosting* on numeric features: the baseline plus every iteration's leaf
    values, added iteration after iteration into a Fortran-ordered array as scikit-learn
    does, then the loss's own link."""

    takes_nan = True

    def __init__(self, estimator: Any, classifier: bool) -> None:
        self.name = "hist-gradient-boosting"
        if getattr(estimator, "_preprocessor", None) is not None:
            raise Unsupported("categorical features have no fast path")
        self.loss = estimator._loss
        self.has_proba = classifier
        self.baseline = np.asarray(estimator._baseline_prediction, dtype=np.float64)
        bitsets, index_map = estimator._bin_mapper.make_known_categories_bitsets()
        predictors = estimator._predictors
        self.per_stage = int(estimator.n_trees_per_iteration_)
        self.stages = len(predictors)
        trees = [_Nodes.of_predictor(p, bitsets, index_map) for stage in predictors for p in stage]
        self.trees = _Trees(trees, int(estimator.n_features_in_))
        self.classes = np.asarray(estimator.classes_) if classifier else None

    def run(self, x: Rows, with_proba: bool) -> Outputs:
        n = x.shape[0]
        start = np.zeros((n, self.per_stage), dtype=np.float64, order="F")
        start += self.baseline
        if self.trees.vectorised(n):
            leaves = self.trees.leaf_values(x).reshape(n, self.stages, self.per_stage)
            raw = np.asfortranarray(_sequential_sum(leaves, start))
        else:
            raw = start
            for i, tree in enumerate(self.trees.trees):
                raw[:, i % self.per_stage] += tree.leaves(x)[:, 0]
        if self.classes is None:
            return self.loss.link.inverse(raw.ravel()), None
        if raw.shape[1] == 1:
            encoded = (raw.ravel() > 0).astype(int)
        else:
            encoded = np.argmax(raw, axis=1)
        predictions = self.classes[encoded]
        return predictions, (self.loss.predict_proba(raw) if with_proba else None)

    def thresholds(self) -> dict[int, npt.NDArray[np.float64]]:
        """Split thresholds by feature index."""
        return self.trees.thresholds()


def _float32(x: Rows) -> npt.NDArray[np.float32]:
    """``x`` as scikit-learn's trees read it; a value no float32 holds is handed off (there
    scikit-learn refuses the input as too large)."""
    with np.errstate(over="ignore"):
        x32 = np.ascontiguousarray(x, dtype=np.float32)
    if np.isinf(x32).any():
        raise _HandOff
    return x32


# ---------------------------------------------------------------------------- linear


class _Linear:
    """Linear models: ``x @ coef.T + intercept`` and, for LogisticRegression, the same
    logistic or softmax link."""

    takes_nan = False

    def __init__(self, estimator: Any, classifier: bool, logistic: bool) -> None:
        self.name = "linear"
        if not isinstance(estimator.coef_, np.ndarray):
            raise Unsupported("sparse coefficients have no fast path")
        coef = estimator.coef_
        self.coef_t = coef.T if coef.ndim == 2 else coef
        self.intercept = estimator.intercept_
        self.classifier = classifier
        self.logistic = logistic
        self.has_proba = logistic
        self.classes = np.asarray(estimator.classes_) if classifier else None

    def run(self, x: Rows, with_proba: bool) -> Outputs:
        scores = x @ self.coef_t + self.intercept
        if self.classes is None:
            return scores, None
        if scores.ndim > 1 and scores.shape[1] == 1:
            scores = scores.reshape(-1)
        indices = (scores > 0).astype(np.intp) if scores.ndim == 1 else np.argmax(scores, axis=1)
        predictions = self.classes.take(indices, axis=0)
        if not (with_proba and self.logistic):
            return predictions, None
        from scipy.special import expit
        from sklearn.utils.extmath import softmax

        if len(self.classes) <= 2:
            prob = expit(scores, out=scores)
            return predictions, np.stack([1 - prob, prob], axis=1)
        return predictions, softmax(scores, copy=False)

    def thresholds(self) -> dict[int, npt.NDArray[np.float64]]:
        """None: a linear model has no split points."""
        return {}


# ---------------------------------------------------------------------------- pipelines


class _Pipeline:
    """A Pipeline: scalers applied inline (the same in-place arithmetic), other transforms
    called directly (without the Pipeline's own per-call work), then the compiled model."""

    def __init__(self, steps: list[tuple[str, Callable[[Rows], Rows]]], final: Compiled) -> None:
        self.steps = steps
        self.final = final
        self.name = f"pipeline({','.join(name for name, _ in steps)})+{final.name}"
        self.takes_nan = final.takes_nan
        self.has_proba = final.has_proba

    def run(self, x: Rows, with_proba: bool) -> Outputs:
        for _, transform in self.steps:
            x = transform(x)
        return self.final.run(np.ascontiguousarray(x, dtype=np.float64), with_proba)

    def thresholds(self) -> dict[int, npt.NDArray[np.float64]]:
        """None: the model's split points are in transformed units."""
        return {}


def scaler(step: Any) -> tuple[str, Callable[[Rows], Rows]]:
    """A Pipeline step as a function of float64 rows: the scalers with scikit-learn's own
    in-place arithmetic, any other transformer's ``transform``."""
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler

    kind = type(step)
    if kind is StandardScaler:
        mean = step.mean_ if step.with_mean else None
        scale = step.scale_ if step.with_std else None

        def standard(x: Rows) -> Rows:
            x = np.array(x, dtype=np.float64)
            if mean is not None:
                x -= mean
            if scale is not None:
                x /= scale
            return x

        return "standard-scaler", standard
    if kind is MinMaxScaler and not step.clip:
        factor, shift = step.scale_, step.min_

        def min_max(x: Rows) -> Rows:
            x = np.array(x, dtype=np.float64)
            x *= factor
            x += shift
            return x

        return "min-max-scaler", min_max
    if kind is MaxAbsScaler and not step.clip:
        divisor = step.scale_

        def max_abs(x: Rows) -> Rows:
            x = np.array(x, dtype=np.float64)
            x /= divisor
            return x

        return "max-abs-scaler", max_abs
    if not hasattr(step, "transform"):
        raise Unsupported(f"pipeline step {type(step).__name__} has no transform")
    transform: Callable[[Rows], Rows] = step.transform
    return type(step).__name__, transform


# ---------------------------------------------------------------------------- choosing


def compile_estimator(estimator: Any) -> Compiled:
    """The compiled form of ``estimator``; raises :class:`Unsupported` with the reason.

    Only these exact classes are compiled: a subclass may compute differently.
    """
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        GradientBoostingClassifier,
        GradientBoostingRegressor,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import (
        ElasticNet,
        Lasso,
        LinearRegression,
        LogisticRegression,
        Ridge,
        RidgeClassifier,
    )
    from sklearn.pipeline import Pipeline
    from sklearn.tree import (
        DecisionTreeClassifier,
        DecisionTreeRegressor,
        ExtraTreeClassifier,
        ExtraTreeRegressor,
    )

    kind = type(estimator)
    if kind in (RandomForestClassifier, ExtraTreesClassifier):
        return _LeafMean(estimator, True, estimator.estimators_)
    if kind in (RandomForestRegressor, ExtraTreesRegressor):
        return _LeafMean(estimator, False, estimator.estimators_)
    if kind in (DecisionTreeClassifier, ExtraTreeClassifier):
        return _LeafMean(estimator, True, None)
    if kind in (DecisionTreeRegressor, ExtraTreeRegressor):
        return _LeafMean(estimator, False, None)
    if kind is GradientBoostingClassifier:
        return _GradientBoosting(estimator, classifier=True)
    if kind is GradientBoostingRegressor:
        return _GradientBoosting(estimator, classifier=False)
    if kind is HistGradientBoostingClassifier:
        return _HistGradientBoosting(estimator, classifier=True)
    if kind is HistGradientBoostingRegressor:
        return _HistGradientBoosting(estimator, classifier=False)
    if kind is LogisticRegression:
        return _Linear(estimator, classifier=True, logistic=True)
    if kind is RidgeClassifier:
        return _Linear(estimator, classifier=True, logistic=False)
    if kind in (LinearRegression, Ridge, Lasso, ElasticNet):
        return _Linear(estimator, classifier=False, logistic=False)
    if kind is Pipeline:
        steps = []
        for _, step in estimator.steps[:-1]:
            if step is None or step == "passthrough":
                continue
            steps.append(scaler(step))
        return _Pipeline(steps, compile_estimator(estimator.steps[-1][1]))
    raise Unsupported(f"{kind.__name__} has no fast path")


def verification_rows(
    probe: Rows, thresholds: dict[int, npt.NDArray[np.float64]], *, allow_nan: bool, seed: int = 0
) -> Rows:
    """The rows a compiled path must agree on: ``probe`` (the reference quantiles), random
    rows inside their ranges, rows sitting on the model's split thresholds (and the next
    float32 above), and, if the model takes them, rows with missing values."""
    rng = np.random.default_rng(seed)
    low, high = probe.min(axis=0), probe.max(axis=0)
    uniform = rng.uniform(low, high, size=(_RANDOM_ROWS, probe.shape[1]))
    parts = [probe, uniform]
    if thresholds:
        on = rng.uniform(low, high, size=(_THRESHOLD_ROWS, probe.shape[1]))
        for feature, values in thresholds.items():
            on[:, feature] = rng.choice(values, size=_THRESHOLD_ROWS)
        on32 = on.astype(np.float32)
        above = np.nextafter(on32, np.float32(np.inf))
        parts += [on, on32.astype(np.float64), above.astype(np.float64)]
    if allow_nan:
        holes = uniform.copy()
        holes[rng.random(holes.shape) < 0.3] = np.nan
        parts.append(holes)
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float64)


def differences(expected: Outputs, actual: Outputs) -> str:
    """Empty if both outputs are the same bits, shapes and dtypes; else what differs."""
    for name, want, got in (
        ("predict", expected[0], actual[0]),
        ("predict_proba", expected[1], actual[1]),
    ):
        if want is None and got is None:
            continue
        if want is None or got is None:
            return f"{name} is {'missing' if got is None else 'not expected'}"
        want, got = np.asarray(want), np.asarray(got)
        if want.shape != got.shape or want.dtype != got.dtype:
            return f"{name} has shape {got.shape} {got.dtype}, expected {want.shape} {want.dtype}"
        if not np.array_equal(want, got, equal_nan=want.dtype.kind == "f"):
            bad = want != got
            rows = int(bad.reshape(len(bad), -1).any(axis=1).sum()) if bad.ndim else 1
            return f"{name} differs from scikit-learn's on {rows} of {len(want)} rows"
    return ""


def verify(
    compiled: Compiled,
    sklearn_predict: Predict,
    rows: Rows,
    with_proba: bool,
    *,
    probe_size: int = 0,
) -> str:
    """Empty if ``compiled`` gives scikit-learn's outputs bit for bit on ``rows``, as one
    batch and in batches of many sizes (a matmul may add up differently for another number
    of rows); else what differed."""
    sizes = (1, 2, 3, 4, 5, 7, 8, 9, 16, 31, 32, 64)
    batches = [rows, rows[:probe_size]] if probe_size else [rows]
    batches += [rows[start : start + size] for size in sizes for start in (0, len(rows) // 2)]
    for batch in batches:
        if not len(batch):
            continue
        expected = sklearn_predict(batch, with_proba)
        try:
            actual = compiled.run(np.ascontiguousarray(batch, dtype=np.float64), with_proba)
        except Exception as exc:
            return f"the compiled path failed: {type(exc).__name__}: {exc}"
        difference = differences(expected, actual)
        if difference:
            return f"{difference} ({len(batch)}-row batch)"
    return ""


def choose(
    estimator: Any,
    sklearn_predict: Predict,
    probe: Rows | None,
    *,
    with_proba: bool,
    allow_nan: bool,
) -> Choice:
    """The fastest exact path for ``estimator``: a compiled one if it is supported and
    proved equal to ``sklearn_predict`` (the server's scikit-learn path), else scikit-learn's
    with the reason. Logs which."""
    choice = _choose(estimator, sklearn_predict, probe, with_proba, allow_nan)
    if choice.predict is None:
        logger.info("predict path: %s (%s)", SKLEARN, choice.reason)
    else:
        logger.info("predict path: %s (equal to scikit-learn's on the reference rows)", choice.path)
    return choice


def _choose(
    estimator: Any,
    sklearn_predict: Predict,
    probe: Rows | None,
    with_proba: bool,
    allow_nan: bool,
) -> Choice:
    if probe is None:
        return Choice(SKLEARN, "no reference statistics to prove a fast path on", None)
    try:
        compiled = compile_estimator(estimator)
    except Unsupported as exc:
        return Choice(SKLEARN, str(exc), None)
    except Exception as exc:
        # A fitted model from another scikit-learn version may lack what is read here.
        return Choice(SKLEARN, f"compiling failed: {type(exc).__name__}: {exc}", None)
    if with_proba and not compiled.has_proba:
        return Choice(SKLEARN, f"the {compiled.name} path has no predict_proba", None)
    rows = verification_rows(probe, compiled.thresholds(), allow_nan=allow_nan)
    try:
        difference = verify(compiled, sklearn_predict, rows, with_proba, probe_size=len(probe))
    except Exception as exc:
        return Choice(SKLEARN, f"scikit-learn fails on the verification rows: {exc}", None)
    if difference:
        return Choice(SKLEARN, f"the {compiled.name} path is not exact: {difference}", None)
    return Choice(compiled.name, "", _guarded(compiled, sklearn_predict))


def _guarded(compiled: Compiled, sklearn_predict: Predict) -> Predict:
    """``compiled.run`` for the input it models; scikit-learn for the rest."""
    takes_nan = compiled.takes_nan

    def predict(rows: Rows, with_proba: bool) -> Outputs:
        x = np.ascontiguousarray(rows, dtype=np.float64)
        if not takes_nan and np.isnan(x).any():
            return sklearn_predict(rows, with_proba)
        try:
            return compiled.run(x, with_proba)
        except _HandOff:
            return sklearn_predict(rows, with_proba)

    return predict
