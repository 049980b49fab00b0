"""Classification metrics for the eye-state classifier (scikit-learn based).

"closed" (class index 0) is the positive class of precision / recall / F1 / ROC-AUC: it is what blinks and
microsleeps are made of. `macro_f1` averages the F1 of both classes.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score, roc_auc_score

from pipeline.data import VALUE_NAMES, subject_name
from pipeline.preprocess import CLASSES

CLOSED, OPEN = 0, 1
SUBGROUP_KEYS = ("glasses", "lighting", "reflections", "sensor")


def softmax_p_open(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e[:, OPEN] / e.sum(axis=1)


def macro_f1(y_true, y_pred) -> float:
    """Macro F1 over the classes present in truth or prediction (a one-class subject predicted perfectly scores 1)."""
    present = np.union1d(np.unique(y_true), np.unique(y_pred))
    return float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0))


def expected_calibration_error(y_true, p_open, n_bins: int = 15) -> float:
    """ECE of the predicted class' confidence, equal-width bins over [0.5, 1]."""
    y_true, p_open = np.asarray(y_true), np.asarray(p_open, np.float64)
    pred = (p_open >= 0.5).astype(int)
    conf = np.where(pred == OPEN, p_open, 1 - p_open)
    correct = (pred == y_true).astype(np.float64)
    edges = np.linspace(0.5, 1.0, n_bins + 1)
    bins = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def _group(y_true, y_pred) -> dict:
    return {"n": int(len(y_true)), "accuracy": float(accuracy_score(y_true, y_pred)), "macro_f1": macro_f1(y_true, y_pred),
            "closed": int((y_true == CLOSED).sum()), "open": int((y_true == OPEN).sum())}


def classification_metrics(y_true, p_open, meta: dict | None = None) -> dict:
    """Full metric dict (keys of the `pipeline.evaluate` JSON) from labels and p_open; prediction = p_open >= 0.5."""
    y_true = np.asarray(y_true, np.int64)
    p_open = np.asarray(p_open, np.float64)
    if len(y_true) == 0:
        raise ValueError("no images to evaluate")
    y_pred = (p_open >= 0.5).astype(np.int64)
    both = len(np.unique(y_true)) == 2
    out = {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision_score(y_true, y_pred, pos_label=CLOSED, zero_division=0)),
        "recall": float(recall_score(y_true, y_pred, pos_label=CLOSED, zero_division=0)),
        "f1_closed": float(f1_score(y_true, y_pred, pos_label=CLOSED, zero_division=0)),
        "macro_f1": macro_f1(y_true, y_pred),
        "roc_auc": float(roc_auc_score(y_true == CLOSED, 1 - p_open)) if both else None,
        "ece": expected_calibration_error(y_true, p_open),
        "confusion": confusion_matrix(y_true, y_pred, labels=[CLOSED, OPEN]).tolist(),
        "positive_class": CLASSES[CLOSED],
        "classes": list(CLASSES),
        "notes": ("precision/recall/f1_closed/roc_auc treat 'closed' as the positive class; macro_f1 averages both "
                  "classes; confusion rows = true [closed, open], columns = predicted; prediction = p_open >= 0.5"),
    }
    meta = meta or {}
    if "subject" in meta:
        subjects = np.asarray(meta["subject"])
        per_subject = {subject_name(s): _group(y_true[subjects == s], y_pred[subjects == s]) for s in np.unique(subjects)}
        accs = np.array([v["accuracy"] for v in per_subject.values()])
        worst = min(per_subject, key=lambda k: per_subject[k]["accuracy"])
        out["per_subject"] = per_subject
        out["per_subject_summary"] = {"min": float(accs.min()), "median": float(np.median(accs)),
                                      "mean": float(accs.mean()), "max": float(accs.max()), "worst_subject": worst}
        out["balanced_subject_accuracy"] = float(accs.mean())
    else:
        out["per_subject"] = {}
        out["per_subject_summary"] = None
        out["balanced_subject_accuracy"] = None
    out["subgroups"] = {}
    for key in SUBGROUP_KEYS:
        if key in meta:
            values = np.asarray(meta[key])
            names = VALUE_NAMES.get(key, {})
            out["subgroups"][key] = {names.get(int(v), str(v)): _group(y_true[values == v], y_pred[values == v])
                                     for v in np.unique(values)}
    return out
