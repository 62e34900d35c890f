"""The ``pcapca stats --plot`` timeline: messages/s by kind and searches never answered (matplotlib)."""
from __future__ import annotations

import os

from ..ca.commands import KINDS
from ..errors import PlotUnavailable
from .render import NS, ns_of
from .timeline import Timeline


def check_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotUnavailable("--plot needs matplotlib, which is not installed: "
                              "pip install 'pcapca[plot]'") from None


def plot(report: dict, timeline: Timeline, path: str, max_points: int = 300) -> None:
    """Messages/s by kind, searches/s and unanswered searches/s over time."""
    check_matplotlib()
    # (matplotlib is optional, and slow to import: only when a plot is asked for)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cap = report["capture"]
    start = ns_of(cap["first"]) or 0
    bins = timeline.bins
    unanswered = timeline.unanswered()
    width = timeline.width
    if bins:
        lo, hi = min(bins), max(bins)
        factor = max(1, -(-(hi - lo + 1) // max_points))
        # a "nice" multiple of the stored resolution: 1, 2, 5 x 10^k
        nice = 1
        while nice < factor:
            for m in (2, 5, 10):
                if nice * m >= factor:
                    nice *= m
                    break
            else:
                nice *= 10
        factor = nice
    else:
        lo = hi = 0
        factor = 1
    step = width * factor
    n = (hi // factor) - (lo // factor) + 1 if bins else 0
    base = lo // factor
    series = [[0] * n for _ in KINDS]
    lost = [0] * n
    for idx, row in bins.items():
        j = idx // factor - base
        for k, v in enumerate(row):
            series[k][j] += v
    for idx, v in unanswered.items():
        j = idx // factor - base
        if 0 <= j < n:
            lost[j] += v
    x = [((base + j) * step - start) / NS for j in range(n)]
    per_s = NS / step

    fig, (ax1, ax2) = plt.subplots(2, 1, sharex=True, figsize=(11, 6.5))
    for k, kind in enumerate(KINDS):
        if any(series[k]):
            ax1.step(x, [v * per_s for v in series[k]], where="post", label=kind)
    ax1.set_ylabel("CA messages/s")
    ax1.set_title("pcapca stats: " + ", ".join(os.path.basename(f["path"]) for f in cap["files"]))
    if any(any(s) for s in series):
        ax1.legend(loc="upper right", fontsize="small")
    k = KINDS.index("search")
    ax2.step(x, [v * per_s for v in series[k]], where="post", label="searches")
    ax2.step(x, [v * per_s for v in lost], where="post", label="searches never answered",
             color="tab:red")
    ax2.set_ylabel("searches/s")
    ax2.set_xlabel(f"seconds since {cap['first_iso'] or '?'} (bins of {step / 1e9:g} s)")
    ax2.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
