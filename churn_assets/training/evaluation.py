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


def score_metrics(labels: np.ndarray, scores: np.ndarray, probabilities: bool) -> dict[str, float]:
    """Compute ROC AUC, PR AUC and top-decile lift; the Brier score only for probabilities."""
    if len(np.unique(labels)) < 2:
        raise ValueError("The evaluation rows hold only one class, so ROC AUC is undefined.")
    metrics = {
        "roc_auc": float(roc_auc_score(labels, scores)),
        "pr_auc": float(average_precision_score(labels, scores)),
        "top_decile_lift": top_decile_lift(labels, scores),
    }
    if probabilities:
        metrics["brier_score"] = float(brier_score_loss(labels, scores))
    return metrics


def roc_plot_markdown(labels: np.ndarray, scores_by_name: dict[str, np.ndarray]) -> str:
    """Draw the ROC curves of several scorers and return them as an inline Markdown image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 5), dpi=90)
    for name, scores in scores_by_name.items():
        false_positive_rate, true_positive_rate, _ = roc_curve(labels, scores)
        axes.plot(false_positive_rate, true_positive_rate, label=f"{name} (AUC {roc_auc_score(labels, scores):.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    axes.set_xlabel("False positive rate")
    axes.set_ylabel("True positive rate")
    axes.set_title("ROC on the held-out evaluation cutoff")
    axes.legend(loc="lower right")
    return figure_markdown(figure, "ROC curves")


def histogram_markdown(bin_counts: np.ndarray, title: str) -> str:
    """Draw counts of equal-width bins over [0, 1] and return them as an inline Markdown image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = np.linspace(0, 1, len(bin_counts) + 1)
    figure, axes = plt.subplots(figsize=(5, 3), dpi=90)
    axes.bar(edges[:-1], bin_counts, width=np.diff(edges), align="edge", color="#4C72B0")
    axes.set_xlabel("Churn probability")
    axes.set_ylabel("Users")
    axes.set_title(title)
    return figure_markdown(figure, title)


def figure_markdown(figure, alt_text: str) -> str:
    """Encode a Matplotlib figure as a PNG data URL inside Markdown, then close the figure."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f"![{alt_text}](data:image/png;base64,{encoded})"
