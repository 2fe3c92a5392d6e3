"""Benchmark: the dashboard's charts in headless Chromium, 10 series x 3,000 points, uPlot against the hand-written
SVG charts they replaced (the baseline, measured in the same run).

Both chart modules have the same API (``Charts.line(container, series, window, opts)``). The SVG module is read from
git (``services/ws_bridge/ws_bridge/static/charts.js`` at --baseline-commit, the last commit with SVG charts); the
uPlot one is the working tree's, with uPlot from ``static/vendor/uplot`` (``make setup``). For each, a page served
from loopback draws one 1,200 x 210 px chart of 10 series x 3,000 points (15-minute readings), then applies
--updates live updates (each series gains a newer point and drops its oldest, as on the dashboard). Measured:

- render time: from the call until the next frame has been produced (requestAnimationFrame, then a task), so the
  browser's style, layout and paint of the result count too; first render, and the median and p95 of the updates;
- CPU: Chromium's main-thread busy time (DevTools ``Performance.getMetrics`` TaskDuration, plus its Script, Layout
  and RecalcStyle parts) over the updates, per update.

The two variants alternate for --rounds rounds (a fresh Chromium each time), and every figure is the median over the
rounds, so a burst of load on a shared machine hits both alike. Prints figures and the ratios (SVG / uPlot), then
ONE JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
STATIC = REPO / "services" / "ws_bridge" / "ws_bridge" / "static"
sys.path.insert(0, str(REPO / "tests"))
from browser_kit import DevTools, chromium  # type: ignore[import-not-found]  # noqa: E402

BASELINE_COMMIT = "7b4ab03"  # the last commit with the hand-written SVG charts
METRICS = ("TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration")

PAGE = """<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="uPlot.min.css"><link rel="stylesheet" href="dashboard.css"></head>
<body><main><section class="panel w12"><div class="chart" id="chart"></div></section></main>
{scripts}<script src="run.js"></script></body></html>"""

RUN_JS = """"use strict";
window.bench = async (seriesCount, points, updates) => {
  const colors = ["#ff7a59", "#4fb3ff", "#f5c542", "#c49bff", "#5ad19a", "#2f9e8f", "#5fa8ff", "#ff6fae", "#aaa",
    "#7d7"];
  const step = 15 * 60 * 1000, t0 = Date.UTC(2020, 0, 1);
  const series = Array.from({ length: seriesCount }, (_, s) => ({ name: "S" + s, color: colors[s % colors.length],
    points: Array.from({ length: points }, (_, i) => [t0 + i * step, 20 + s + 5 * Math.sin((i + s * 7) / 40)]) }));
  const container = document.getElementById("chart");
  const frame = () => new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)));
  const draw = async () => {
    const pts = series[0].points, start = performance.now();
    Charts.line(container, series, [pts[0][0], pts[pts.length - 1][0]], {});
    await frame();
    return performance.now() - start;
  };
  await frame();
  const first = await draw();
  const times = [];
  for (let u = 0; u < updates; u++) {
    for (const s of series) {
      const last = s.points[s.points.length - 1];
      s.points.push([last[0] + step, last[1] + Math.sin(u) * 0.5]);
      s.points.shift();
    }
    times.push(await draw());
  }
  return JSON.stringify({ first, times });
};
"""


def baseline_charts(commit: str) -> str:
    return subprocess.run(["git", "show", f"{commit}:services/ws_bridge/ws_bridge/static/charts.js"], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout


def baseline_css(commit: str) -> str:
    return subprocess.run(["git", "show", f"{commit}:services/ws_bridge/ws_bridge/static/dashboard.css"], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout


def write_site(root: Path, commit: str) -> None:
    vendor = STATIC / "vendor" / "uplot"
    if not (vendor / "uPlot.iife.min.js").is_file():
        sys.exit("uPlot is not installed: run `make setup` (services/ws_bridge/fetch-uplot.sh)")
    for name, scripts, charts, css in (
        ("svg", '<script src="charts.js"></script>', baseline_charts(commit), baseline_css(commit)),
        ("uplot", '<script src="uPlot.iife.min.js"></script><script src="charts.js"></script>',
         (STATIC / "charts.js").read_text(), (STATIC / "dashboard.css").read_text()),
    ):
        site = root / name
        site.mkdir()
        (site / "index.html").write_text(PAGE.format(scripts=scripts))
        (site / "charts.js").write_text(charts)
        (site / "dashboard.css").write_text(css)
        (site / "run.js").write_text(RUN_JS)
        for f in ("uPlot.iife.min.js", "uPlot.min.css"):
            (site / f).write_bytes((vendor / f).read_bytes())


@contextlib.contextmanager
def serve(root: Path) -> Iterator[str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def metrics(tools: DevTools) -> dict[str, float]:
    return {m["name"]: float(m["value"]) for m in tools.call("Performance.getMetrics")["metrics"]}


def measure(tools: DevTools, url: str, series: int, points: int, updates: int) -> dict[str, float]:
    tools.call("Page.enable")
    tools.call("Performance.enable")
    tools.call("Page.navigate", url=url)
    for _ in range(600):
        if tools.evaluate("document.readyState === 'complete' && typeof window.bench === 'function'"):
            break
        tools.evaluate("new Promise((done) => setTimeout(done, 100))", await_promise=True)
    before = metrics(tools)
    result = json.loads(tools.evaluate(f"window.bench({series}, {points}, {updates})", await_promise=True))
    after = metrics(tools)
    times = sorted(result["times"])
    per_update = {m: (after[m] - before[m]) * 1000 / (updates + 1) for m in METRICS}
    return {"first_ms": result["first"], "update_median_ms": times[len(times) // 2],
            "update_p95_ms": times[min(len(times) - 1, int(len(times) * 0.95))],
            **{f"cpu_{m.removesuffix('Duration').lower()}_ms_per_render": v for m, v in per_update.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=10, help="series in the chart (default 10)")
    parser.add_argument("--points", type=int, default=3000, help="points per series (default 3000)")
    parser.add_argument("--updates", type=int, default=40, help="live updates measured (default 40)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of both variants; medians reported (default 3)")
    parser.add_argument("--baseline-commit", default=BASELINE_COMMIT,
                        help=f"commit whose static/charts.js is the SVG baseline (default {BASELINE_COMMIT})")
    args = parser.parse_args(argv)
    if min(args.series, args.points, args.updates, args.rounds) < 1:
        parser.error("--series, --points, --updates and --rounds must be positive")
    rounds: dict[str, list[dict[str, float]]] = {"svg": [], "uplot": []}
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        root = Path(tmp)
        (root / "site").mkdir()
        write_site(root / "site", args.baseline_commit)
        with serve(root / "site") as url:
            for r in range(args.rounds):
                for name in ("svg", "uplot"):
                    with chromium(root / f"profile-{name}-{r}", width=1300, height=700) as tools:
                        print(f"round {r + 1}/{args.rounds} {name}: {args.series} series x {args.points} points,"
                              f" {args.updates} updates ...", flush=True)
                        rounds[name].append(measure(tools, f"{url}{name}/index.html", args.series, args.points,
                                                    args.updates))
    results = {name: {k: statistics.median(m[k] for m in runs) for k in runs[0]} for name, runs in rounds.items()}
    for name, figures in results.items():
        f = figures
        print(f"{name:6s} first render {f['first_ms']:8.1f} ms | update median {f['update_median_ms']:7.1f} ms,"
              f" p95 {f['update_p95_ms']:7.1f} ms | CPU per render {f['cpu_task_ms_per_render']:7.1f} ms"
              f" (script {f['cpu_script_ms_per_render']:.1f}, layout {f['cpu_layout_ms_per_render']:.1f},"
              f" style {f['cpu_recalcstyle_ms_per_render']:.1f})")
    svg, upl = results["svg"], results["uplot"]
    ratios = {"first_ratio": svg["first_ms"] / upl["first_ms"],
              "update_ratio": svg["update_median_ms"] / upl["update_median_ms"],
              "cpu_ratio": svg["cpu_task_ms_per_render"] / upl["cpu_task_ms_per_render"]}
    print(f"SVG / uPlot: first render x{ratios['first_ratio']:.1f}, update x{ratios['update_ratio']:.1f},"
          f" CPU x{ratios['cpu_ratio']:.1f}")
    print(json.dumps({"bench": "dashboard", "series": args.series, "points": args.points, "updates": args.updates,
                      "rounds": args.rounds,
                      "baseline_commit": args.baseline_commit,
                      **{f"{n}_{k}": round(v, 2) for n, f in results.items() for k, v in f.items()},
                      **{k: round(v, 2) for k, v in ratios.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
