"""Sample-efficiency curves: median gap against labels (log-log), a band across seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .._atomic import atomic_write


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend (a dependency; imported when needed
    because it is slow to import)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(rows: list[dict[str, Any]], baselines: Iterable[str], path: str | Path,
                band: tuple[float, float] = (25, 75),
                reference_gaps: dict[str, float] | None = None) -> None:
    """One panel per setting: the median gap over seeds against labels, the ``band`` percentiles
    shaded; designs solid, baselines dashed, the reference policy's gap (no labels) dotted; both
    axes logarithmic."""
    from .study import _median_curves

    plt = _pyplot()
    baselines = set(baselines)
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    cols = min(2, len(settings))
    nrows = -(-len(settings) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(6.2 * cols, 4.6 * nrows), squeeze=False)
    cmap = plt.get_cmap("tab20")
    names = list(dict.fromkeys(r["design"] for r in rows))
    colour = {n: cmap(i % 20) for i, n in enumerate(names)}
    for ax, setting in zip(axes.flat, settings):
        budgets, _, curves = _median_curves(rows, setting)
        for name, arr in curves.items():
            med = np.nanmedian(arr, axis=0)
            lo, hi = np.nanpercentile(arr, band, axis=0)
            style = "--" if name in baselines else "-"
            ax.plot(budgets, med, style, color=colour[name], label=name, lw=1.4)
            ax.fill_between(budgets, lo, hi, color=colour[name], alpha=0.12, lw=0)
        if reference_gaps and setting in reference_gaps:
            ax.axhline(reference_gaps[setting], color="k", ls=":", lw=1.0, label="pi_ref (no labels)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(budgets)
        ax.set_xticklabels([str(b) for b in budgets])
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_title(setting)
        ax.set_xlabel("labels")
        ax.set_ylabel("policy gap  beta E KL(pi_hat || pi*)")
        ax.grid(True, which="both", alpha=0.25)
    for ax in list(axes.flat)[len(settings):]:
        ax.axis("off")
    handles, labels = [], []
    for ax in axes.flat:  # every name once, from whichever panel has it
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.04 + 0.025 * (-(-len(labels) // 4)), 1, 1))
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=64)
    plt.close(fig)
