"""The bench's output: the Markdown table of the steps, PNG plots (matplotlib, imported only here), and the generated
section of docs/performance-runs.md (between the bench-e2e markers; docs/performance.md is written by hand)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _f(value: float, digits: int = 0) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:,.{digits}f}"


def table(steps: Sequence[dict[str, Any]]) -> str:
    head = ("| offered /s | readings in /s | raw out /s | aggregates /s | dead letters /s | HBase raw rows /s "
            "| to clients /s | lag growth | HBase p50 / p99 / max ms | websocket p50 / p99 / max ms | day close p50 s "
            "| sustained |")
    both = any(s.get("ws_committed_latency", {}).get("n") for s in steps)
    if both:
        head += " websocket (committed path) p50 / p99 / max ms |"
    lines = [head, "|" + "---|" * (13 if both else 12)]
    for s in steps:
        hb, ws = s["hbase_latency"], s["ws_latency"]
        wc = s.get("ws_committed_latency", {})
        extra = f" {_f(wc.get('p50_ms'))} / {_f(wc.get('p99_ms'))} / {_f(wc.get('max_ms'))} |" if both else ""
        lines.append(
            f"| {_f(s['offered'])} | {_f(s['readings_in'])} | {_f(s['raw_out'])} | {_f(s['aggregates_out'], 1)} "
            f"| {_f(s['deadletters_out'], 1)} | {_f(s['hbase_raw_rows'])} | {_f(s['ws_records'])} "
            f"| {s['lag_growth']:+.2f} | {_f(hb['p50_ms'])} / {_f(hb['p99_ms'])} / {_f(hb['max_ms'])} "
            f"| {_f(ws['p50_ms'])} / {_f(ws['p99_ms'])} / {_f(ws['max_ms'])} | {_f(s['day_close_s_p50'], 1)} "
            f"| {'yes' if s['sustained'] else 'no'} |{extra}")
    return "\n".join(lines)


def usage_table(steps: Sequence[dict[str, Any]]) -> str:
    names = sorted({n for s in steps for n in s["cpu"]})
    lines = ["| offered /s | " + " | ".join(f"{n} CPU % / RSS MiB" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for s in steps:
        cells = [f"{_f(s['cpu'].get(n, math.nan))} / {_f(s['rss_mib'].get(n, math.nan))}" for n in names]
        lines.append(f"| {_f(s['offered'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plots(steps: Sequence[dict[str, Any]], lag_series: Sequence[tuple[float, dict[str, int]]], out_dir: Path,
          prefix: str = "perf") -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    offered = [s["offered"] for s in steps]
    paths = []

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key, label in (("readings_in", "readings in"), ("raw_out", "raw out of Flink"),
                       ("hbase_raw_rows", "raw rows into HBase")):
        ax.plot(offered, [s[key] for s in steps], marker="o", label=label)
    ax.plot(offered, offered, linestyle=":", color="grey", label="offered")
    ax.set(xlabel="offered load (readings/s)", ylabel="throughput (/s)", title="Throughput against offered load")
    ax.legend()
    ax.grid(alpha=0.3)
    paths.append(_save(fig, out_dir / f"{prefix}-throughput.png"))

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for key, label in (("hbase_latency", "reading -> HBase row"), ("ws_latency", "reading -> websocket frame"),
                       ("ws_committed_latency", "reading -> websocket frame, committed path")):
        if not any(s.get(key, {}).get("n") for s in steps):
            continue
        for q, style in (("p50_ms", "--"), ("p99_ms", "-")):
            ax.plot(offered, [s[key][q] / 1000 for s in steps], marker="o", linestyle=style,
                    label=f"{label} {q[:-3]}")
    ax.set(xlabel="offered load (readings/s)", ylabel="latency (s)", title="End-to-end latency against offered load",
           yscale="log")
    if ax.get_lines():
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    paths.append(_save(fig, out_dir / f"{prefix}-latency.png"))

    fig, ax = plt.subplots(figsize=(7, 4.2))
    if lag_series:
        t0 = lag_series[0][0]
        for group in sorted(lag_series[0][1]):
            ax.plot([t - t0 for t, _ in lag_series], [lag.get(group, 0) for _, lag in lag_series], label=group)
    for s in steps:
        ax.axvline(s["start_s"], color="grey", alpha=0.3)
        ax.text(s["start_s"], 0, f" {int(s['offered']):,}/s", rotation=90, fontsize=7, va="bottom", color="grey")
    ax.set(xlabel="time since the load started (s)", ylabel="consumer lag (records)", title="Consumer lag per group")
    ax.legend()
    ax.grid(alpha=0.3)
    paths.append(_save(fig, out_dir / f"{prefix}-lag.png"))
    return paths


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def replace_section(page: str, section: str, label: str) -> str:
    """``page`` with the text between the markers of run ``label`` replaced by ``section`` (appended if missing)."""
    begin, end = f"<!-- bench-e2e:{label}:begin -->", f"<!-- bench-e2e:{label}:end -->"
    block = f"{begin}\n{section.strip()}\n{end}"
    if begin in page and end in page:
        return page[:page.index(begin)] + block + page[page.index(end) + len(end):]
    return page.rstrip() + "\n\n" + block + "\n"


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinity (nested in dicts, lists, tuples) replaced by None: valid JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
