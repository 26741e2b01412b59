"""Rendering a run's figures: the summary table, ratios between two runs, and the plot."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from extender.devtools import scheduler_imitation
from loadtest.driver import Result


def _num(digits: int) -> Callable[[Any], str]:
    def fmt(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, int | float):
            return f"{value:,.{digits}f}"
        return str(value)

    return fmt


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


ROWS: list[tuple[str, str, Callable[[Any], str]]] = [
    ("pods bound", "pods_bound", _num(0)),
    ("pods unschedulable", "pods_unschedulable", _num(0)),
    ("retries (gang requeues)", "retries", _num(0)),
    ("duration s", "duration_s", _num(2)),
    ("pods/s average", "pods_per_second", _num(1)),
    ("pods/s p50 (1-s windows)", "pods_per_second_p50", _num(1)),
    ("pods/s p90", "pods_per_second_p90", _num(1)),
    ("pods/s p99", "pods_per_second_p99", _num(1)),
    ("filter ms p50", "filter_ms_p50", _num(3)),
    ("filter ms p99", "filter_ms_p99", _num(3)),
    ("prioritize ms p50", "prioritize_ms_p50", _num(3)),
    ("prioritize ms p99", "prioritize_ms_p99", _num(3)),
    ("bind ms p50", "bind_ms_p50", _num(3)),
    ("bind ms p99", "bind_ms_p99", _num(3)),
    ("filter+prioritize ms/pod", "filter_prioritize_ms_per_pod", _num(3)),
    ("server filter ms mean", "server_filter_ms_mean", _num(3)),
    ("server prioritize ms mean", "server_prioritize_ms_mean", _num(3)),
    ("server bind ms mean", "server_bind_ms_mean", _num(3)),
    ("errors", "errors", _num(0)),
    ("cache hit ratio", "cache_hit_ratio", _pct),
    ("cache hit+partial ratio", "cache_reuse_ratio", _pct),
    ("extender CPU ms/pod", "cpu_ms_per_pod", _num(3)),
    ("driver CPU ms/pod", "driver_cpu_ms_per_pod", _num(3)),
    ("extender peak RSS MB", "rss_mb", _num(1)),
    ("gangs done", "gangs_done", _num(0)),
    ("gang plans", "gang_plans", _num(0)),
    ("gang plan ms avg", "gang_plan_ms_avg", _num(3)),
    ("gang quorum->bound ms avg", "gang_quorum_to_bound_ms_avg", _num(1)),
]


def table(results: Sequence[Result]) -> str:
    """One column per run; rows that no run has are left out."""
    rows = [r for r in ROWS if any(r[1] in res.figures for res in results)]
    width = max(len(r[0]) for r in rows) + 2
    cols = [max(12, len(res.label) + 2) for res in results]
    lines = [
        " " * width + "".join(f"{res.label:>{c}}" for res, c in zip(results, cols, strict=True))
    ]
    for label, key, fmt in rows:
        cells = "".join(
            f"{fmt(res.figures.get(key)):>{c}}" for res, c in zip(results, cols, strict=True)
        )
        lines.append(f"{label:<{width}}{cells}")
    return "\n".join(lines)


COSTS = (
    "cpu_ms_per_pod",
    "filter_ms_p50",
    "filter_ms_p99",
    "prioritize_ms_p50",
    "prioritize_ms_p99",
    "bind_ms_p50",
    "bind_ms_p99",
    "filter_prioritize_ms_per_pod",
)


def ratios(first: Result, second: Result, a: str, b: str) -> dict[str, float | None]:
    """Costs as second/first (e.g. off/on: > 1 means the first is cheaper), throughput as
    first/second."""

    def ratio(x: Any, y: Any) -> float | None:
        if not isinstance(x, int | float) or not isinstance(y, int | float) or not y:
            return None
        return round(x / y, 2)

    out = {
        f"{key}_{b}_over_{a}": ratio(second.figures.get(key), first.figures.get(key))
        for key in COSTS
    }
    out[f"pods_per_second_{a}_over_{b}"] = ratio(
        first.figures.get("pods_per_second"), second.figures.get("pods_per_second")
    )
    return out


def render_ratios(values: dict[str, float | None]) -> str:
    return "\n".join(f"  {k:<46} {'-' if v is None else f'{v:.2f}x'}" for k, v in values.items())


def _window(duration: float) -> float:
    """1-s windows like scheduler_perf; shorter ones for short runs, so a plot still shows."""
    return 1.0 if duration >= 10 else max(0.05, duration / 20)


def _per_window(
    timeline: Sequence[tuple[float, str, float]], verb: str, q: float, width: float
) -> tuple[list[float], list[float]]:
    buckets: dict[int, list[float]] = {}
    for t, v, seconds in timeline:
        if v == verb:
            buckets.setdefault(int(t / width), []).append(seconds)
    xs = sorted(buckets)
    ms = [scheduler_imitation.percentile(buckets[x], q) * 1e3 for x in xs]
    return [(x + 0.5) * width for x in xs], ms


def plot(results: Sequence[Result], path: Path, title: str) -> None:
    """Throughput per window and per-verb latency (p50, p99 per window) over time; one colour
    per run, one line style per verb."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import ScalarFormatter

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7.5), sharex=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    longest = max((r.figures.get("duration_s") or 0.0 for r in results), default=0.0)
    width = _window(longest)
    styles = {"filter": "-", "prioritize": "--", "bind": ":"}
    for i, res in enumerate(results):
        color = colors[i % len(colors)]
        duration = res.figures.get("duration_s") or 0.0
        n = max(1, math.ceil(duration / width))
        counts = [0] * n
        for t in res.bind_times:
            counts[min(n - 1, int(t / width))] += 1
        # the last window is partial: its rate is over the time it really covers
        spans = [min(width, duration - x * width) or width for x in range(n)]
        top.plot(
            [x * width + span / 2 for x, span in enumerate(spans)],
            [c / span for c, span in zip(counts, spans, strict=True)],
            "-o" if n < 30 else "-",
            markersize=3,
            color=color,
            label=f"{res.label}: {res.figures.get('pods_per_second', 0):,.0f} pods/s average",
        )
        for verb, style in styles.items():
            for q, line in ((0.5, 1.8), (0.99, 0.8)):
                xs, ys = _per_window(res.timeline, verb, q, width)
                if xs:
                    bottom.plot(
                        xs, ys, style, color=color, linewidth=line, alpha=1 if q < 0.9 else 0.6
                    )
    top.set_ylabel(f"pods bound per second\n({width:.2g}-s windows)")
    top.set_title(title)
    top.grid(alpha=0.3)
    top.legend(fontsize=8, loc="best")
    top.set_ylim(bottom=0)
    bottom.set_ylabel("client-side latency, ms (log)\nthick: p50, thin: p99 per window")
    bottom.set_yscale("log")
    bottom.yaxis.set_major_formatter(ScalarFormatter())
    bottom.set_xlabel("seconds since the first filter call")
    bottom.grid(alpha=0.3, which="both")
    bottom.legend(
        [Line2D([], [], color="black", linestyle=s) for s in styles.values()],
        list(styles),
        fontsize=8,
        loc="upper right",
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
