"""Benchmark of the local stack: cold start (install + start), warm start to all-ready, RSS per component.

Targets (issue 2): warm start to all-ready <= 60 s on 2 cores; whole stack <= 4 GiB RSS.

Cold start = install with an EMPTY temporary Maven cache (jars really downloaded from Maven Central) and a NEW
temporary PyFlink venv (pip still uses its own wheel cache, so PyPI downloads may be skipped: said in the output),
then start everything. Warm start = the same with the caches filled: once on a fresh home (includes formatting
Kafka's storage), once as a restart of an existing home. RSS is sampled after all-ready, with a PyFlink job
(Kafka -> Kafka, the smoke job) running, whose process tree peak is reported as "flink-job".

Usage: python bench/bench_stack.py [--no-cold]      Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import wait
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from iotpipe_stack import install, supervisor
from iotpipe_stack.ports import free_ports
from iotpipe_stack.settings import REPO_ROOT, resolve
from iotpipe_stack.stack import SERVICES, LocalStack

WARM_TARGET_S = 60.0
RSS_TARGET_MIB = 4096.0
JOB = REPO_ROOT / "stack" / "tests" / "flink_copy_job.py"


def log(msg: str) -> None:
    print(f"[bench] {msg}", flush=True)


def make_stack(home: Path, cache: Path | None = None, venv: Path | None = None) -> LocalStack:
    k, c, z, t = free_ports(4)
    overrides = {"home": str(home)}
    if cache is not None:
        overrides["cache"] = str(cache)
    if venv is not None:
        overrides["flink_venv"] = str(venv)
    s = resolve(os.environ, overrides).replace(kafka_port=k, kafka_controller_port=c, zk_port=z, thrift_port=t)
    return LocalStack(s, progress=lambda m: log(f"  {m}"), die_with_parent=True)


def timed_up(stack: LocalStack) -> tuple[float, float]:
    """(install seconds, start-to-all-ready seconds) of one `up`."""
    t0 = time.monotonic()
    stack.install(flink=True)
    t1 = time.monotonic()
    stack.up()
    t2 = time.monotonic()
    return t1 - t0, t2 - t1


def flink_job_peak_rss(stack: LocalStack) -> tuple[int, float]:
    """Run the smoke PyFlink job on 200 records; return (peak RSS bytes of its process tree, seconds)."""
    inst = stack.install()
    bootstrap = stack.s.bootstrap
    src, dst = "bench_flink_in", "bench_flink_out"
    with AdminClient({"bootstrap.servers": bootstrap}) as admin:
        futures = admin.create_topics([NewTopic(x, 1, 1) for x in (src, dst)], request_timeout=60)
        wait(futures.values())  # every request answered before the block destroys the client
        for f in futures.values():
            f.result()
    p = Producer({"bootstrap.servers": bootstrap})
    for i in range(200):
        p.produce(src, value=f"device-{i}".encode())
    p.flush(60)
    env = {**os.environ, "JAVA_HOME": str(inst.java.home), "JVM_ARGS": "-Xmx768m -XX:+UseSerialGC"}
    env.pop("VIRTUAL_ENV", None)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [str(inst.flink_python), str(JOB), "--bootstrap", bootstrap, "--source", src, "--sink", dst,
         "--jar", inst.connector_jar.as_uri()],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    peak = 0
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(proc.stdout or []), daemon=True)
    reader.start()
    while proc.poll() is None:
        peak = max(peak, supervisor.rss_bytes(proc.pid))
        time.sleep(0.5)
    reader.join(5)
    if proc.returncode != 0:
        raise SystemExit("flink job failed:\n" + "".join(out)[-3000:])
    return peak, time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-cold", action="store_true", help="skip the cold (empty cache) measurement")
    args = ap.parse_args()
    result: dict[str, object] = {"bench": "stack", "cores": os.cpu_count()}
    tmp = Path(tempfile.mkdtemp(prefix="iotpipe-bench-"))
    try:
        if not args.no_cold:
            log("cold start: empty Maven cache, new PyFlink venv (pip's wheel cache is kept)")
            cold = make_stack(tmp / "cold-home", cache=tmp / "cold-cache", venv=tmp / "cold-venv-flink")
            try:
                inst_s, start_s = timed_up(cold)
            finally:
                cold.down()
            result |= {
                "cold_install_s": round(inst_s, 1),
                "cold_start_s": round(start_s, 1),
                "cold_total_s": round(inst_s + start_s, 1),
                "cold_measured": "empty maven cache, new venv",
            }
            log(f"cold: install {inst_s:.1f}s + start {start_s:.1f}s = {inst_s + start_s:.1f}s")
            shutil.rmtree(tmp / "cold-cache", ignore_errors=True)
            shutil.rmtree(tmp / "cold-venv-flink", ignore_errors=True)

        log("warm start on a fresh home (caches filled)")
        warm = make_stack(tmp / "warm-home")
        try:
            inst_s, start_s = timed_up(warm)
            warm_total = inst_s + start_s
            log(f"warm (fresh home): install check {inst_s:.1f}s + start {start_s:.1f}s = {warm_total:.1f}s")
            rss = {n: supervisor.rss_bytes(warm.running_pid(n) or 0) for n in SERVICES}
            log("running a PyFlink job (Kafka -> Kafka) to sample the Flink runtime's RSS")
            flink_rss, job_s = flink_job_peak_rss(warm)
            rss["flink-job"] = flink_rss
            rss_after = {n: supervisor.rss_bytes(warm.running_pid(n) or 0) for n in SERVICES}
            for n in SERVICES:
                rss[n] = max(rss[n], rss_after[n])
            warm.down()
            t0 = time.monotonic()
            warm.up()
            restart_s = time.monotonic() - t0
            log(f"warm restart of the same home: {restart_s:.1f}s")
        finally:
            warm.down()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    mib = {k: round(v / 2**20) for k, v in rss.items()}
    total = sum(mib.values())
    print()
    print(f"{'figure':<34} {'value':>10} {'target':>10} {'ratio':>7}")
    row = "{:<34} {:>10.1f} {:>10.0f} {:>7.2f}"
    print(row.format("warm start to all-ready (s)", warm_total, WARM_TARGET_S, warm_total / WARM_TARGET_S))
    print(row.format("warm restart, same home (s)", restart_s, WARM_TARGET_S, restart_s / WARM_TARGET_S))
    if "cold_total_s" in result:
        print(f"{'cold start: install + start (s)':<34} {result['cold_total_s']:>10} {'-':>10} {'-':>7}")
    for name, v in mib.items():
        print(f"{'RSS ' + name + ' (MiB)':<34} {v:>10}")
    print(f"{'RSS whole stack (MiB)':<34} {total:>10} {RSS_TARGET_MIB:>10.0f} {total / RSS_TARGET_MIB:>7.2f}")
    print(
        f"(flink-job = peak RSS of the PyFlink job's process tree: python + JVM MiniCluster + Beam worker; "
        f"job {job_s:.1f}s)"
    )
    s = warm.s
    heaps = {"kafka": s.kafka_heap, "hbase": s.hbase_heap, "thrift": s.thrift_heap}
    print(f"(service RSS sampled idle after start and after the job; their heaps are capped at {heaps} -Xmx)")
    result |= {
        "warm_start_s": round(warm_total, 1), "warm_restart_s": round(restart_s, 1),
        "warm_target_s": WARM_TARGET_S, "warm_ratio": round(warm_total / WARM_TARGET_S, 3),
        "rss_mib": mib, "rss_total_mib": total, "rss_target_mib": RSS_TARGET_MIB,
        "rss_ratio": round(total / RSS_TARGET_MIB, 3), "flink_job_s": round(job_s, 1), "heaps": heaps,
        "versions": {"kafka": install.KAFKA_VERSION, "hbase": install.HBASE_VERSION, "pyflink": install.FLINK_VERSION},
    }  # fmt: skip
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
