"""Benchmark: HBase + Thrift CPU per raw reading, one row per reading (today's layout, the baseline) against one row
per device and hour or day, the readings its cells (the OpenTSDB way; issue 15, item 3).

Writes the same readings of --devices devices through Thrift as the sync worker does (batches of --batch readings,
two connections, `mutateRows`), each layout into its own new table, and counts the CPU of the HBase and Thrift
processes from the first write until HBase is idle again (its flushes and compactions included). Layouts alternate
--repeat times after an unmeasured warm-up; medians count. Starts its own HBase + Thrift (free loopback ports,
temporary home) unless --thrift-port is given (then the CPU is read from the processes whose command line holds
--home).

The readings of a device follow each other, so a batch holds about batch / devices readings per device: with the
defaults, several per device-hour, as in the bench-e2e's accelerated clock. At a real 15-minute cadence a live batch
holds one reading per device (docs/performance.md, "What limits the end-to-end rate").

Prints each run, then ONE JSON line.  Smallest run: ``--readings 50000 --repeat 1``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import happybase
import psutil

from iotcommon import hbase_layout as layout

VALUE = (b'{"v":1,"site":"site0001","sensor":"TH1","ts":"2020-01-01T00:15:00.000Z","value":21.53,"seq":1234567,'
         b'"unit":"C","quality":"ok"}')  # the size of a canonical reading
STEP_MS = 900_000  # a reading every 15 minutes of event time
WRITERS = 2
IDLE_CPU_S = 0.5  # HBase is idle again when it used less than this in IDLE_POLL_S
IDLE_POLL_S = 5.0
WARMUP = 500_000  # readings of the unmeasured first run
HBASE_CLASS, THRIFT_CLASS = "org.apache.hadoop.hbase.master.HMaster", "org.apache.hadoop.hbase.thrift.ThriftServer"


def cell(i: int, devices: int, per_row: int) -> tuple[bytes, bytes]:
    """Row key and column of reading i: device i % devices, its (i // devices)-th reading. per_row 1: today's key and
    `d:m`; otherwise the row of the device's per_row readings in a row (4: an hour, 96: a day at 15-minute steps)."""
    device, seq = i % devices, i // devices
    site, sensor = f"site{device // 7:04d}", f"S{device % 7}"
    ts_ms = 1_577_836_800_000 + seq * STEP_MS
    if per_row == 1:
        return layout.reading_key(site, sensor, ts_ms, seq), layout.MESSAGE_COLUMN
    first = seq - seq % per_row
    row = layout.reading_key(site, sensor, 1_577_836_800_000 + first * STEP_MS, first)
    return row, f"d:{ts_ms:013d}|{seq:010d}".encode()


def cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def find(cls: str, home: str) -> psutil.Process:
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if cls in cmd and any(home in part for part in cmd):
            return proc
    raise SystemExit(f"no {cls} process of the stack home {home}")


def write(host: str, port: int, table: bytes, readings: int, devices: int, per_row: int, batch: int) -> None:
    def writer(first: int) -> None:
        conn = happybase.Connection(host, port, timeout=60_000)
        try:
            t = conn.table(table)
            for start in range(first, readings, batch * WRITERS):
                rows: defaultdict[bytes, dict[bytes, bytes]] = defaultdict(dict)
                for i in range(start, min(start + batch, readings)):
                    key, column = cell(i, devices, per_row)
                    rows[key][column] = VALUE
                with t.batch() as b:
                    for key, columns in rows.items():
                        b.put(key, columns)
        finally:
            conn.close()

    threads = [threading.Thread(target=writer, args=(k * batch,)) for k in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def one_run(host: str, port: int, home: str, args: argparse.Namespace, per_row: int) -> dict[str, float]:
    hbase, thrift = find(HBASE_CLASS, home), find(THRIFT_CLASS, home)
    conn = happybase.Connection(host, port, timeout=60_000)
    table = f"bench_raw_rows_{per_row}_{uuid.uuid4().hex[:6]}".encode()
    conn.create_table(table, layout.families())
    try:
        h0, t0, w0 = cpu_s(hbase), cpu_s(thrift), time.monotonic()
        write(host, port, table, args.readings, args.devices, per_row, args.batch)
        write_s = time.monotonic() - w0
        last = cpu_s(hbase)
        while True:  # flushes and compactions belong to the writes
            time.sleep(IDLE_POLL_S)
            now = cpu_s(hbase)
            if now - last < IDLE_CPU_S:
                break
            last = now
        out = {"per_row": per_row, "write_s": round(write_s, 1),
               "hbase_us": round((cpu_s(hbase) - h0) / args.readings * 1e6, 2),
               "thrift_us": round((cpu_s(thrift) - t0) / args.readings * 1e6, 2),
               "load": round(os.getloadavg()[0], 1)}
    finally:
        conn.delete_table(table, disable=True)
        conn.close()
    out["both_us"] = round(out["hbase_us"] + out["thrift_us"], 2)
    print(f"  {per_row:>3} readings per row: HBase {out['hbase_us']:.2f} + Thrift {out['thrift_us']:.2f} us per "
          f"reading (writes {out['write_s']:.1f} s, load {out['load']})", flush=True)
    return out


@contextmanager
def services(args: argparse.Namespace) -> Iterator[tuple[str, int, str]]:
    if args.thrift_port:
        yield args.thrift_host, args.thrift_port, args.home
        return
    from own_stack import own_stack

    with own_stack("bench-raw-rows-", ["hbase", "thrift"]) as settings:
        yield settings.host, settings.thrift_port, str(settings.home)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--readings", type=int, default=2_000_000, help="readings per run (default 2,000,000)")
    p.add_argument("--devices", type=int, default=140, help="devices the readings cycle through (default 140)")
    p.add_argument("--batch", type=int, default=1000, help="readings per Thrift call (default 1000)")
    p.add_argument("--layouts", default="1,4,96", help="readings per row; 1 (today's layout) is the baseline")
    p.add_argument("--repeat", type=int, default=2, help="runs per layout, alternating; medians count (default 2)")
    p.add_argument("--thrift-host", default="127.0.0.1")
    p.add_argument("--thrift-port", type=int, default=0, help="use this Thrift server instead of starting a stack")
    p.add_argument("--home", default="", help="with --thrift-port: the stack home (to find its processes)")
    args = p.parse_args(argv)
    try:
        layouts = sorted({int(x) for x in args.layouts.split(",")} | {1})
    except ValueError:
        p.error("--layouts: comma-separated integers")
    if min(layouts) < 1 or args.readings < args.batch or args.devices < 1 or args.repeat < 1 or args.batch < 1:
        p.error("need --layouts >= 1, --readings >= --batch >= 1, --devices >= 1, --repeat >= 1")
    if args.thrift_port and not args.home:
        p.error("--thrift-port needs --home")
    runs: defaultdict[int, list[dict[str, float]]] = defaultdict(list)
    with services(args) as (host, port, home):
        print("warm-up (not counted): the JVMs' JIT compilers", flush=True)
        one_run(host, port, home, argparse.Namespace(**{**vars(args), "readings": min(args.readings, WARMUP)}), 1)
        for r in range(args.repeat):
            print(f"round {r + 1} of {args.repeat}: {args.readings:,} readings of {args.devices} devices per layout",
                  flush=True)
            for per_row in layouts:
                runs[per_row].append(one_run(host, port, home, args, per_row))
    median = {k: {f: round(statistics.median(run[f] for run in v), 2) for f in ("hbase_us", "thrift_us", "both_us")}
              for k, v in runs.items()}
    base = median[1]["both_us"]
    for k in layouts:
        print(f"{k:>3} per row: HBase + Thrift {median[k]['both_us']:.2f} us per reading, "
              f"{median[k]['both_us'] / base:.2f} of one row per reading")
    print(json.dumps({"bench": "raw_rows", "readings": args.readings, "devices": args.devices, "batch": args.batch,
                      "baseline_us_per_reading": base,
                      "layouts": {str(k): {**median[k], "ratio": round(median[k]["both_us"] / base, 3)}
                                  for k in layouts},
                      "runs": {str(k): v for k, v in runs.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
