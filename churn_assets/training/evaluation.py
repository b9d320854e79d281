"""Metrics and plots comparing the churn model with baselines on the same held-out rows."""

import base64
import io

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score, roc_curve


def top_decile_lift(labels: np.ndarray, scores: np.ndarray) -> float:
    """Return the churn rate among the 10% highest scores divided by the overall churn rate."""
    count = max(1, int(round(len(scores) * 0.1)))
    top = np.argsort(-scores, kind="stable")[:count]
    base_rate = labels.mean()
    return float(labels[top].mean() / base_rate) if base_rate > 0 else float("nan")


def top_decile_capture_rate(labels: np.ndarray, scores: np.ndarray) -> float:
    """Return the share of all churners found among the 10% highest scores."""
    count = max(1, int(round(len(scores) * 0.1)))
    top = np.argsort(-scores, kind="stable")[:count]
    churners = labels.sum()
    return float(labels[top].sum() / churners) if churners > 0 else float("nan")


def precision_recall_at(labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict[str, float]:
    """Return precision and recall of flagging users whose probability is above the threshold."""
    flagged = probabilities > threshold
    true_positives = float((flagged & (labels == 1)).sum())
    precision = true_positives / flagged.sum() if flagged.any() else float("nan")
    recall = true_positives / labels.sum() if labels.sum() else float("nan")
    return {"precision_at_threshold": float(precision), "recall_at_threshold": float(recall)}


def score_metrics(labels: np.ndarray, scores: np.ndarray, probabilities: bool) -> dict[str, float]:
    """Compute ROC AUC, PR AUC and top-decile lift; the Brier score only for probabilities."""
    if len(np.unique(labels)) < 2:
        raise ValueError("The evaluation rows hold only one class, so ROC AUC is undefined.")
    metrics = {
        "roc_auc": float(roc_auc_score(labels, scores)),
        "pr_auc": float(average_precision_score(labels, scores)),
        "top_decile_lift": top_decile_lift(labels, scores),
        "top_decile_capture_rate": top_decile_capture_rate(labels, scores),
    }
    if probabilities:
        metrics["brier_score"] = float(brier_score_loss(labels, scores))
    return metrics


def roc_plot_markdown(labels: np.ndarray, scores_by_name: dict[str, np.ndarray]) -> str:
    """Draw the ROC curves of several scorers and return them as an inline Markdown image."""
    figure, axes = new_figure(5, 5)
    for name, scores in scores_by_name.items():
        false_positive_rate, true_positive_rate, _ = roc_curve(labels, scores)
        axes.plot(false_positive_rate, true_positive_rate, label=f"{name} (AUC {roc_auc_score(labels, scores):.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    axes.set_xlabel("False positive rate")
    axes.set_ylabel("True positive rate")
    axes.set_title("ROC on the held-out evaluation cutoff")
    axes.legend(loc="lower right")
    return figure_markdown(figure, "ROC curves")


def calibration_plot_markdown(labels: np.ndarray, probabilities_by_name: dict[str, np.ndarray], bins: int = 10) -> str:
    """Draw observed churn rate against mean predicted probability per decile of each scorer."""
    figure, axes = new_figure(5, 5)
    for name, probabilities in probabilities_by_name.items():
        order = np.argsort(probabilities, kind="stable")
        groups = np.array_split(order, bins)
        axes.plot(
            [probabilities[group].mean() for group in groups],
            [labels[group].mean() for group in groups],
            marker="o", label=name,
        )
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    axes.set_xlabel("Mean predicted churn probability (decile)")
    axes.set_ylabel("Observed churn rate")
    axes.set_title("Calibration on the held-out cutoff")
    axes.legend(loc="upper left")
    return figure_markdown(figure, "Calibration")


def lift_plot_markdown(labels: np.ndarray, scores_by_name: dict[str, np.ndarray], bins: int = 10) -> str:
    """Draw the churn rate of each score decile (highest first) divided by the overall churn rate."""
    figure, axes = new_figure(6, 4)
    width = 0.8 / max(1, len(scores_by_name))
    base_rate = labels.mean()
    for index, (name, scores) in enumerate(scores_by_name.items()):
        groups = np.array_split(np.argsort(-scores, kind="stable"), bins)
        lifts = [labels[group].mean() / base_rate for group in groups]
        axes.bar(np.arange(1, bins + 1) + index * width, lifts, width=width, label=name)
    axes.axhline(1.0, color="grey", linestyle="--", linewidth=0.8)
    axes.set_xlabel("Score decile (1 = highest risk)")
    axes.set_ylabel("Lift")
    axes.set_title("Lift by decile on the held-out cutoff")
    axes.legend()
    return figure_markdown(figure, "Lift")


def metrics_table_markdown(metrics_by_name: dict[str, dict[str, float]]) -> str:
    """Render scorers' metrics as a Markdown table; missing metrics show as a dash."""
    names = ["roc_auc", "pr_auc", "brier_score", "top_decile_lift", "top_decile_capture_rate"]
    lines = ["| scorer | " + " | ".join(names) + " |", "| --- " * (len(names) + 1) + "|"]
    for scorer, metrics in metrics_by_name.items():
        cells = [f"{metrics[name]:.4f}" if name in metrics else "–" for name in names]
        lines.append(f"| {scorer} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def histogram_markdown(bin_counts: np.ndarray, title: str) -> str:
    """Draw counts of equal-width bins over [0, 1] and return them as an inline Markdown image."""
    edges = np.linspace(0, 1, len(bin_counts) + 1)
    figure, axes = new_figure(5, 3)
    axes.bar(edges[:-1], bin_counts, width=np.diff(edges), align="edge", color="#4C72B0")
    axes.set_xlabel("Churn probability")
    axes.set_ylabel("Users")
    axes.set_title(title)
    return figure_markdown(figure, title)


def new_figure(width: float, height: float):
    """Return a Matplotlib figure and axes drawn off-screen (no display is needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height), dpi=90)


def figure_markdown(figure, alt_text: str) -> str:
    """Encode a Matplotlib figure as a PNG data URL inside Markdown, then close the figure."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f"![{alt_text}](data:image/png;base64,{encoded})"
