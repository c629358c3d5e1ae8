"""Classification metrics in numpy (no scikit-learn dependency): AUROC, F1, thresholds, per-sequence aggregation."""

from __future__ import annotations

import numpy as np


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half); NaN when one class is absent."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    ranks = np.empty(len(s), dtype=np.float64)
    # average ranks over ties
    edges = np.flatnonzero(np.diff(s)) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [len(s)]])
    for a, b in zip(starts, ends):
        ranks[a:b] = 0.5 * (a + b - 1) + 1.0
    r = np.empty_like(ranks)
    r[order] = ranks
    return float((r[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def confusion(pred: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Precision, recall, F1, false-positive rate and accuracy of boolean predictions."""
    pred, labels = np.asarray(pred, dtype=bool), np.asarray(labels, dtype=bool)
    tp = int((pred & labels).sum())
    fp = int((pred & ~labels).sum())
    fn = int((~pred & labels).sum())
    tn = int((~pred & ~labels).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "fpr": fp / (fp + tn) if fp + tn else 0.0,
            "accuracy": (tp + tn) / max(1, len(pred))}


def best_f1_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The score threshold (predict positive where ``score >= t``) with the highest F1."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    tp = np.cumsum(y)
    fp = np.cumsum(~y)
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # predict positive up to each distinct score
    f1 = 2 * tp[last] / (tp[last] + fp[last] + y.sum())
    if not len(last) or y.sum() == 0:
        return 0.5
    return float(s[last[int(np.argmax(f1))]])


def per_sequence(values: np.ndarray, seq: np.ndarray, how: str = "max") -> tuple[np.ndarray, np.ndarray]:
    """Aggregate window values per sequence: (sequence ids ``[S]``, aggregate ``[S]``); ``how`` max or mean."""
    ids, inv = np.unique(seq, return_inverse=True)
    if how == "max":
        out = np.full(len(ids), -np.inf)
        np.maximum.at(out, inv, values)
    elif how == "mean":
        out = np.bincount(inv, weights=values, minlength=len(ids)) / np.bincount(inv, minlength=len(ids))
    else:
        raise ValueError(f"unknown aggregation {how!r}; valid: max, mean")
    return ids, out
