"""Label issues from out-of-fold predictions.

Every image is scored by a model that never trained on it: the images are cut into K
stratified folds (default 5) and a fast model trained on the other K-1 folds predicts each
fold. The default model is scikit-learn's SVC (RBF kernel, C=10, Platt probabilities
fitted out of fold within the training part) on
each image's pixels area-resized to 16x16 per channel and scaled to 0..1: on the planted
digits set of bench/bench_check.py its probabilities put all 36 flipped labels among the
first 72 ranked. With a trained model (`--model`), a logistic regression on the model's
features (the input of its last Dense layer) is the fold model instead.

Classify: ranked by cleanlab's label quality score (`cleanlab.rank.get_label_quality_scores`,
self-confidence: the out-of-fold probability of the given label); the issues are the images
cleanlab's confident learning flags (`cleanlab.filter.find_label_issues`) and those whose
out-of-fold prediction is another class, most likely wrong first; `score` is 1 - quality.
Multilabel: the same through `cleanlab.multilabel_classification`, one fold model per
label. Regression: rows whose target is more than OUTLIER_Z robust
standard deviations (1.4826 x the median absolute residual) from its out-of-fold prediction
(support vector regression on the same pixels), ranked by that distance.
"""

from __future__ import annotations

import warnings

import numpy as np

from cnncli.errors import UsageError
from cnncli.progress import Counter

DEFAULT_FOLDS = 5
SVC_C = 10.0
OUTLIER_Z = 3.0
# a fold model trains on at most this many images (a seeded sample of its training part):
# a kernel SVC's cost grows with the square of its training images, the sample's does not
TRAIN_LIMIT = 4000
PIXEL_MODEL = "SVC (RBF, C=10, Platt-calibrated) on 16x16 pixels"


def check_folds(folds: int, smallest: tuple[str, int] | None, n: int) -> None:
    """--folds from 2 to the images of the smallest class (or of the dataset)."""
    if folds < 2:
        raise UsageError(
            f"--folds must be 2 or more, got {folds}", f"the default is {DEFAULT_FOLDS}"
        )
    if smallest is not None and folds > smallest[1]:
        name, count = smallest
        raise UsageError(
            f"--folds {folds} is more than the {count} images of the smallest class {name!r}",
            f"use --folds {max(2, count)} or fewer (each fold needs an image of every class)",
        )
    if folds > n:
        raise UsageError(
            f"--folds {folds} is more than the dataset's {n} images",
            f"use --folds {max(2, n)} or fewer",
        )


def _splitter(task: str, folds: int, seed: int):
    from sklearn.model_selection import KFold, StratifiedKFold

    if task == "classify":
        return StratifiedKFold(folds, shuffle=True, random_state=seed)
    return KFold(folds, shuffle=True, random_state=seed)


def _classifier(y, features_from_model: bool):
    """A fresh probabilistic classifier for class indices `y` (the training part): SVC with
    Platt scaling fitted out of fold (CalibratedClassifierCV, as scikit-learn advises
    instead of SVC(probability=True)), or a logistic regression on a model's features or
    when a class has fewer than 2 images to calibrate on."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    smallest = int(np.bincount(y)[np.unique(y)].min())
    if features_from_model or smallest < 2:
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    return CalibratedClassifierCV(SVC(C=SVC_C), cv=min(5, smallest), ensemble=False)


def _probabilities(x, y, held, features_from_model: bool) -> np.ndarray:
    """(len(held), y.max() + 1) probabilities from a classifier trained on (x, y); a class
    absent from y gets 0, a single class gets 1."""
    width = int(y.max()) + 1
    present = np.unique(y)
    pred = np.zeros((len(held), width))
    if len(present) == 1:
        pred[:, present[0]] = 1.0
        return pred
    model = _classifier(y, features_from_model).fit(x, y)
    pred[:, model.classes_] = model.predict_proba(held)
    return pred


def _regressor():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVR

    return make_pipeline(StandardScaler(), SVR(C=SVC_C))


def out_of_fold(
    x: np.ndarray,
    y: np.ndarray,
    task: str,
    folds: int,
    seed: int = 0,
    features_from_model: bool = False,
    counter: Counter | None = None,
) -> np.ndarray:
    """Out-of-fold predictions: (N, classes) probabilities (classify: y class indices),
    (N, labels) per-label probabilities (multilabel), or (N, T) values in the targets'
    units (regression). Each fold model trains on at most TRAIN_LIMIT images."""
    x = np.asarray(x, np.float32)
    classes = int(y.max()) + 1 if task == "classify" else 0
    out = None
    rng = np.random.default_rng(seed)
    for train, held in _splitter(task, folds, seed).split(x, y if task == "classify" else None):
        if len(train) > TRAIN_LIMIT:
            train = np.sort(rng.choice(train, TRAIN_LIMIT, replace=False))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter of a fold model
            if task == "regression":
                mean, std = y[train].mean(0), y[train].std(0) + 1e-12
                pred = np.stack(
                    [
                        _regressor()
                        .fit(x[train], (y[train, t] - mean[t]) / std[t])
                        .predict(x[held])
                        * std[t]
                        + mean[t]
                        for t in range(y.shape[1])
                    ],
                    axis=1,
                )
            elif task == "multilabel":
                hot = (y[train] > 0.5).astype(np.int64)
                pred = np.stack(
                    [
                        _probabilities(x[train], hot[:, k], x[held], features_from_model)[:, -1]
                        if hot[:, k].max()
                        else np.zeros(len(held))
                        for k in range(y.shape[1])
                    ],
                    axis=1,
                )
            else:
                pred = _probabilities(x[train], y[train], x[held], features_from_model)
                if pred.shape[1] < classes:
                    pred = np.pad(pred, ((0, 0), (0, classes - pred.shape[1])))
        if out is None:
            out = np.zeros((len(x), pred.shape[1]), np.float64)
        out[held] = pred
        if counter is not None:
            counter.add()
    assert out is not None  # the splitter made at least one fold
    return out


def classify_issues(labels: np.ndarray, probs: np.ndarray) -> list[tuple[int, int, float, bool]]:
    """(image index, suggested class, score, flagged by confident learning) of the images
    whose label is probably wrong, most likely wrong first."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    probs = probs / probs.sum(axis=1, keepdims=True).clip(min=1e-12)
    quality = get_label_quality_scores(labels, probs, method="self_confidence")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flagged = find_label_issues(labels, probs)
    suggested = probs.argmax(axis=1)
    chosen = np.flatnonzero(flagged | (suggested != labels))
    order = chosen[np.argsort(quality[chosen], kind="stable")]
    return [(int(i), int(suggested[i]), float(1 - quality[i]), bool(flagged[i])) for i in order]


def multilabel_issues(labels: np.ndarray, probs: np.ndarray) -> list[tuple]:
    """(image index, suggested multi-hot, score, flagged) as classify_issues, for labels."""
    from cleanlab.multilabel_classification.filter import find_label_issues
    from cleanlab.multilabel_classification.rank import get_label_quality_scores

    given = [list(np.flatnonzero(row > 0.5)) for row in labels]
    quality = get_label_quality_scores(given, probs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        flagged = find_label_issues(given, probs)
    suggested = probs >= 0.5
    differs = (suggested != (labels > 0.5)).any(axis=1)
    chosen = np.flatnonzero(flagged | differs)
    order = chosen[np.argsort(quality[chosen], kind="stable")]
    return [(int(i), suggested[i], float(1 - quality[i]), bool(flagged[i])) for i in order]


def regression_issues(targets: np.ndarray, predicted: np.ndarray) -> list[tuple]:
    """(row index, predicted targets, distance in robust standard deviations) of the rows
    more than OUTLIER_Z from their prediction (the largest over targets), farthest first."""
    resid = targets - predicted
    mad = np.median(np.abs(resid - np.median(resid, axis=0)), axis=0) * 1.4826
    z = (np.abs(resid - np.median(resid, axis=0)) / np.maximum(mad, 1e-12)).max(axis=1)
    chosen = np.flatnonzero(z > OUTLIER_Z)
    order = chosen[np.argsort(-z[chosen], kind="stable")]
    return [(int(i), predicted[i], float(z[i])) for i in order]
