"""Benchmark of the whole pipeline on the local stack, driven open-loop at stepped offered rates (issue 15).

A paced producer (the simulator's Kafka settings, its own process) -> <prefix>.readings -> stream job (PyFlink) ->
.raw/.aggregates/.late/.deadletters -> sync worker(s) -> HBase, plus the bridge with N websocket clients (each on the
raw readings of one site). Everything runs in a temporary local stack on free loopback ports; it is stopped at the end,
also on Ctrl-C or SIGTERM.

Reading i is due at a time fixed by the plan (e2e.schedule), so latencies are measured from when a reading SHOULD
have been sent (a producer that falls behind shows up as latency). Per step, over its measuring window (the last two
thirds of the hold): throughput at each stage, consumer lag per group, reading -> HBase row (sampled probes) and
reading -> websocket frame latency percentiles, time from a day's first reading of the next day to the day's aggregate
row in HBase, CPU and RSS per component. A step is sustained when the backlog grows by at most 10 % of what was
offered in the window and HBase gets >= 90 % of the offered rate. The run stops after the first step that is not.
Saturation point = the highest sustained rate; ratio = saturation / a plain confluent-kafka produce+consume rate
measured in the same run (same readings, same settings, same broker): the median of three rounds before the load and
three after it (the warm broker, every other process stopped), whichever is higher.

Usage: python bench/bench_e2e.py [--steps 1000,5000,...] [--hold-s 60] [--quick] [--workers 2] [--checkpoint-ms 500]
       [--live-raw committed] [--doc docs/performance-runs.md --img docs/img]
Prints figures and the Markdown table, then ONE JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from e2e import report
from e2e.clients import Clients
from e2e.load import PacedProducer, higher_baseline, raw_baselines
from e2e.observe import HBaseProber, Offsets
from e2e.pipeline import PARTITIONS, Options, Running, running_pipeline
from e2e.runner import Sample, sample, summarise, warm_up
from e2e.schedule import make_plan
from e2e.stats import Window, saturation

DEFAULT_STEPS = "1000,5000,10000,20000,40000,60000"
QUICK_STEPS = "1000,5000"
SAMPLE_S = 2.0
DRAIN_S = 60.0


def log(message: str) -> None:
    print(f"[bench-e2e] {message}", flush=True)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", default=DEFAULT_STEPS, help=f"offered rates, readings/s (default {DEFAULT_STEPS})")
    p.add_argument("--hold-s", type=float, default=60.0, help="seconds each step is held (default 60)")
    p.add_argument("--quick", action="store_true",
                   help=f"steps {QUICK_STEPS}, 20 s each, smaller baseline, no warm-up, --jit quick")
    p.add_argument("--sites", type=int, default=20, help="sites (x 7 sensors = devices; default 20)")
    p.add_argument("--clients", type=int, default=4, help="websocket clients, one site each (default 4)")
    p.add_argument("--workers", type=int, default=1, help="sync workers in one group (default 1)")
    p.add_argument("--checkpoint-ms", type=int, default=2000, help="stream job checkpoint interval (default 2000)")
    p.add_argument("--live-raw", choices=("uncommitted", "committed"), default="uncommitted",
                   help="the bridge's live path of raw readings (IOTPIPE_BRIDGE_LIVE_RAW; default uncommitted)")
    p.add_argument("--compare-committed", action="store_true",
                   help="also run a bridge with --live-raw committed (same clients count): both paths in one run")
    p.add_argument("--baseline-readings", type=int, default=300_000, help="readings of the raw Kafka baseline")
    p.add_argument("--baseline-rounds", type=int, default=3,
                   help="timed rounds of the baseline after an untimed one; the median counts (default 3)")
    p.add_argument("--no-stop", action="store_true", help="run every step even after one is not sustained")
    p.add_argument("--warmup-s", type=float, default=180.0,
                   help="seconds of load at --warmup-rate before the measured steps, never reported: the JVMs' JIT "
                        "compilers use a large share of the CPU for minutes after a start (default 180; 0: none)")
    p.add_argument("--jit", choices=("full", "quick"), default="full",
                   help="JIT of the stack's Kafka, HBase and Thrift JVMs (IOTPIPE_JIT; default full: C1 then C2, as "
                        "a long-running deployment runs them; needs the warm-up, C2 compiles for minutes after a "
                        "start. quick: C1 only, `make run`'s quick start)")
    p.add_argument("--warmup-rate", type=int, default=0,
                   help="readings/s of the warm-up (default 0: the first step's rate). Below the steps' rates the "
                        "JIT compiles without leaving a backlog for the first step (at 30,000/s a 180 s warm-up "
                        "left ~900,000 readings in the sync group, at 20,000/s none)")
    p.add_argument("--doc", default="", help="write the results section of this page (e.g. docs/performance-runs.md)")
    p.add_argument("--img", default="", help="write the plots into this directory (e.g. docs/img)")
    p.add_argument("--label", default="", help="name of this run in the doc section and the plots' file names")
    p.add_argument("--keep-home", default="",
                   help="run the stack in this directory and keep it (its logs) after the run (default: a "
                        "temporary one)")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.hold_s, args.baseline_readings, args.warmup_s, args.jit = \
            QUICK_STEPS, 20.0, 100_000, 0.0, "quick"
    try:
        args.rates = [int(r) for r in args.steps.split(",") if r.strip()]
    except ValueError:
        p.error(f"--steps: not a list of integers: {args.steps!r}")
    if not args.rates or min(args.rates) < 1 or args.hold_s < 6 or args.workers < 1 or args.clients < 0 \
            or args.sites < max(1, args.clients) or args.sites > 9999 or args.baseline_rounds < 1 \
            or args.warmup_rate < 0:
        p.error("need rates >= 1, --hold-s >= 6, --workers >= 1, 1 <= --sites <= 9999, --clients <= --sites, "
                "--baseline-rounds >= 1 and --warmup-rate >= 0")
    return args


def run(args: argparse.Namespace, pipeline: Running) -> dict[str, Any]:
    plan = make_plan(args.rates, args.hold_s, args.sites, datetime.now(UTC), warmup_s=args.warmup_s,
                     warmup_rate=args.warmup_rate)
    measured = plan.measured
    log(f"raw Kafka baseline: {args.baseline_readings:,} readings produced, then consumed; an untimed round, then "
        f"the median of {args.baseline_rounds}")
    before = raw_baselines(pipeline.bootstrap, plan, args.baseline_readings, args.baseline_rounds)
    log_baseline(before)
    warm_up(pipeline, plan, log)
    offsets = Offsets(pipeline.bootstrap, pipeline.topics, PARTITIONS)
    clients = Clients(f"ws://127.0.0.1:{pipeline.bridge_port}/ws", args.clients, plan, 0.0)
    clients.start()
    committed = None
    if pipeline.committed_bridge_port:
        committed = Clients(f"ws://127.0.0.1:{pipeline.committed_bridge_port}/ws", args.clients, plan, 0.0)
        committed.start()
    start_wall = time.time() + 2.0
    clients.start_wall = start_wall
    if committed is not None:
        committed.start_wall = start_wall
    prober = HBaseProber(*pipeline.thrift, plan, start_wall)
    prober.start()
    producer = PacedProducer(pipeline.bootstrap, pipeline.topics.readings, plan, start_wall)
    samples: list[Sample] = []
    windows: list[Window] = []
    try:
        pids = {**pipeline.pids(), "producer": producer.process.pid or 0}
        warm = f"a {args.warmup_s:.0f} s warm-up at {plan.steps[0].rate:,}/s, then " if plan.warmup else ""
        log(f"load: {warm}{len(measured)} steps of {args.hold_s:.0f} s, {plan.devices} devices ({args.sites} sites)")
        judged, stopped_after = 0, None
        end = start_wall + plan.steps[-1].end_s
        while time.time() < end + DRAIN_S:
            samples.append(sample(offsets, pipeline, pids, clients, committed))
            while stopped_after is None and judged < len(measured) \
                    and time.time() > start_wall + measured[judged].end_s + SAMPLE_S:
                step = summarise(plan, measured[judged], start_wall, samples, prober.log, clients.log,
                                 committed.log if committed else None)
                windows.append(step.window)
                log(f"step {step.window.offered:,.0f}/s: HBase {step.window.delivered:,.0f} rows/s, lag growth "
                    f"{step.window.lag_growth:+.2f}, HBase p99 {step.data['hbase_latency']['p99_ms']:,.0f} ms, "
                    f"websocket p99 {step.data['ws_latency']['p99_ms']:,.0f} ms -> "
                    f"{'sustained' if step.window.sustained else 'NOT sustained'}")
                judged += 1
                if not step.window.sustained and not args.no_stop and stopped_after is None:
                    stopped_after = judged
                    producer.stop()
                    end = time.time()
                    log("saturated: load stopped; draining")
            if judged >= len(measured) and stopped_after is None and time.time() > end \
                    and sum(samples[-1].lag.values()) < 1000:
                break
            time.sleep(SAMPLE_S)
        steps = [summarise(plan, s, start_wall, samples, prober.log, clients.log,
                           committed.log if committed else None).data
                 for s in measured[:stopped_after or len(measured)]]
    finally:
        producer.stop()
        prober.stop()
        clients.stop()
        if committed is not None:
            committed.stop()
        offsets.close()
    log("raw Kafka baseline again, on the warm broker, every other process stopped first")
    for name in pipeline.stack.process_names():
        if name != "kafka" and pipeline.stack.running_pid(name) is not None:
            pipeline.stack.stop_service(name)
    after = raw_baselines(pipeline.bootstrap, plan, args.baseline_readings, args.baseline_rounds)
    log_baseline(after)
    baseline = higher_baseline(before, after)
    sat = saturation(windows)
    return {"baseline": baseline, "steps": steps, "saturation_rate": sat, "saturation_ratio": sat / baseline["rate"],
            "warmup_rate": plan.steps[0].rate if plan.warmup else 0,
            "lag_series": [(s.t - start_wall, s.lag) for s in samples], "probes_missing": prober.log.missing,
            "ws_duplicates": clients.log.duplicates, "ws_errors": clients.log.errors[:5]}


def log_baseline(baseline: dict[str, Any]) -> None:
    log(f"  {baseline['rate']:,.0f} readings/s (produce {baseline['produce_s']:.1f} s + consume "
        f"{baseline['consume_s']:.1f} s; rounds {', '.join(f'{r:,.0f}' for r in baseline['rounds'])})")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background (SIG_IGN)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops everything like Ctrl-C
    options = Options(workers=args.workers, checkpoint_ms=args.checkpoint_ms, live_raw=args.live_raw,
                      compare_committed=args.compare_committed, jit=args.jit)
    load_before = os.getloadavg()[0]
    with running_pipeline(options, log, keep_home=args.keep_home) as pipeline:
        result = run(args, pipeline)
    load_after = os.getloadavg()[0]
    label = args.label or f"w{args.workers}-cp{args.checkpoint_ms}-{args.live_raw}"
    text = summary_text(args, result, label, load_before, load_after)
    print(text, flush=True)
    if args.img:
        for path in report.plots(result["steps"], result["lag_series"], Path(args.img), f"perf-{label}"):
            log(f"wrote {path}")
    if args.doc:
        page = Path(args.doc)
        page.write_text(report.replace_section(page.read_text() if page.exists() else "", text, label))
        log(f"wrote the {label} section of {page}")
    figures = {"bench": "e2e", "label": label, "workers": args.workers, "checkpoint_ms": args.checkpoint_ms,
               "jit": args.jit, "warmup_s": args.warmup_s, "warmup_rate": result["warmup_rate"],
               "live_raw": args.live_raw, "saturation_readings_s": result["saturation_rate"],
               "baseline_readings_s": round(result["baseline"]["rate"]),
               "baseline_before_readings_s": round(result["baseline"]["before"]["rate"]),
               "baseline_after_readings_s": round(result["baseline"]["after"]["rate"]),
               "baseline_rounds_readings_s": {when: [round(r) for r in result["baseline"][when]["rounds"]]
                                              for when in ("before", "after")},
               "saturation_ratio": round(result["saturation_ratio"], 4), "load_avg": [load_before, load_after],
               "steps": [{k: v for k, v in s.items() if k not in ("cpu", "rss_mib")} for s in result["steps"]],
               "probes_missing": result["probes_missing"], "ws_duplicates": result["ws_duplicates"]}
    print(json.dumps(report.finite(figures)))
    return 0


def summary_text(args: argparse.Namespace, result: dict[str, Any], label: str, load_before: float,
                 load_after: float) -> str:
    steps = result["steps"]

    def rounds(baseline: dict[str, Any]) -> str:
        return f"{baseline['rate']:,.0f} ({' / '.join(f'{r:,.0f}' for r in baseline['rounds'])})"

    return "\n".join([
        f"### Run `{label}`: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"`python bench/bench_e2e.py --steps {args.steps} --hold-s {args.hold_s:.0f} --warmup-s {args.warmup_s:.0f} "
        f"--warmup-rate {args.warmup_rate} --jit {args.jit} "
        f"--workers {args.workers} "
        f"--checkpoint-ms {args.checkpoint_ms} --live-raw {args.live_raw}"
        f"{' --compare-committed' if args.compare_committed else ''}`; {args.sites} sites x 7 sensors, "
        f"{args.clients} websocket clients; load average {load_before:.1f} before, {load_after:.1f} after.",
        "",
        f"Raw confluent-kafka produce+consume baseline (same run, the higher of two medians: before the load "
        f"{rounds(result['baseline']['before'])}, after it on the warm broker {rounds(result['baseline']['after'])}): "
        f"**{result['baseline']['rate']:,.0f} readings/s**. "
        f"Saturation point: **{result['saturation_rate']:,.0f} readings/s** = "
        f"**{result['saturation_ratio']:.3f}** of the baseline. HBase probes never found: {result['probes_missing']}; "
        f"readings shown twice to a websocket client: {result['ws_duplicates']}.",
        "",
        report.table(steps),
        "",
        report.usage_table(steps),
        "",
        f"![throughput](img/perf-{label}-throughput.png) ![latency](img/perf-{label}-latency.png) "
        f"![lag](img/perf-{label}-lag.png)",
    ])


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("[bench-e2e] interrupted: everything it started is stopped", file=sys.stderr)
        sys.exit(130)
