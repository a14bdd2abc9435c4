"""Classification metrics from predictions, with no dependency beyond the standard library."""

from __future__ import annotations

from typing import Any


def confusion_matrix(y_true: list[int], y_pred: list[int], num_classes: int) -> list[list[int]]:
    m = [[0] * num_classes for _ in range(num_classes)]
    for t, p in zip(y_true, y_pred, strict=True):
        m[t][p] += 1
    return m


def classification_metrics(y_true: list[int], y_pred: list[int], num_classes: int) -> dict[str, Any]:
    """accuracy, macro precision / recall / F1, per-class figures and the confusion matrix.
    A class with no predictions has precision 0; with no examples it is left out of macro averages."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    n = len(y_true)
    correct = sum(cm[i][i] for i in range(num_classes))
    per_class = []
    for c in range(num_classes):
        tp = cm[c][c]
        predicted = sum(cm[r][c] for r in range(num_classes))
        actual = sum(cm[c])
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append({"precision": precision, "recall": recall, "f1": f1, "support": actual})
    present = [pc for pc in per_class if pc["support"] > 0] or per_class
    k = len(present)
    return {
        "accuracy": correct / n if n else 0.0,
        "macro_precision": sum(pc["precision"] for pc in present) / k,
        "macro_recall": sum(pc["recall"] for pc in present) / k,
        "macro_f1": sum(pc["f1"] for pc in present) / k,
        "per_class": per_class,
        "confusion_matrix": cm,
    }
