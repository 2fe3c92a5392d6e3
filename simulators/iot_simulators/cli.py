"""``python -m iot_simulators``: simulate building sensors and produce their readings to Kafka.

Exit codes: 0 done (end reached or SIGTERM/SIGINT after flushing), 1 Kafka unreachable or readings not delivered,
2 invalid options.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence

from iot_simulators.config import SimConfig, plan
from iot_simulators.encoding import site_id
from iotcommon import logs
from iotcommon.config import describe, load
from iotcommon.errors import ConfigError, ServiceUnavailable
from iotcommon.shutdown import stop_on_signals

DESCRIPTION = ("Simulates buildings (sites) with 10 sensors each and produces their readings to Kafka: TH1/TH2 "
               "temperature, HVAC1/HVAC2/MiAC1/MiAC2 energy and W1 water every 15 minutes, Etot/Wtot cumulative "
               "meters at local midnight, Mov1 motion events. Some W1 readings are withheld and delivered late. "
               "Sites can live in several time zones (IOTPIPE_SITE_ZONES): each site's days follow its own zone.")

log = logging.getLogger("iot_simulators")


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    try:
        cfg = load(SimConfig, sys.argv[1:] if argv is None else argv, environ, prog="python -m iot_simulators",
                   description=DESCRIPTION)
        the_plan = plan(cfg, environ)
    except ConfigError as exc:
        print(f"iot-simulators: invalid option: {exc}", file=sys.stderr)
        return 2
    logs.setup(cfg.log_level, cfg.log_format)
    log.info("starting: %s", describe(cfg))
    sites = [site_id(n) for n in the_plan.site_numbers]
    for group in the_plan.groups():
        shown = ", ".join(site_id(n) for n in group.site_numbers[:5])
        log.info("zone %s: %d site(s) (%s%s)", group.zone, len(group.site_numbers), shown,
                 " ..." if len(group.site_numbers) > 5 else "")
    log.info("sites %s .. %s (%d), topic %s, %s, start %s, %s", sites[0], sites[-1], len(sites), the_plan.topic,
             "as fast as possible" if not the_plan.step_seconds else f"{the_plan.step_seconds:g} s per 15-min step",
             the_plan.timeline.start.isoformat(),
             f"{the_plan.stop - 1} steps" if the_plan.stop is not None else "no end")

    from iot_simulators.producer import KafkaSink
    from iot_simulators.runner import run, site_groups

    stop = stop_on_signals(lambda name: log.info("%s received: stopping after the current step, flushing", name))

    sink = KafkaSink(cfg)
    try:
        try:
            partitions = sink.connect(the_plan.topic, stop)
        except ServiceUnavailable as exc:
            log.error("giving up: %s", exc)
            return 1
        if stop.is_set():
            log.info("stopped by a signal while waiting for Kafka: nothing was sent")
            return 0
        log.info("connected to Kafka at %s; topic %s has %d partition(s)", cfg.bootstrap, the_plan.topic, partitions)
        res = run(the_plan, site_groups(the_plan, cfg.seed), sink, stop, progress_s=cfg.progress_s,
                  flush_timeout_s=cfg.delivery_timeout_s)
    finally:
        sink.close()
    summary = (f"sent {res.delivered} readings in {res.steps} steps, {res.seconds:.1f} s "
               f"({res.delivered / max(res.seconds, 1e-9):.0f}/s), late delivered {res.late}")
    if res.failed or res.unacknowledged:
        summary += f", {res.failed} failed, {res.unacknowledged} unacknowledged"
    if res.withheld_unsent:
        summary += f", {res.withheld_unsent} withheld readings not sent (stopped before their delivery step)"
    if not res.ok:
        log.error("failed: %s; %s", res.error, summary)
        return 1
    log.info("done%s: %s", " (signal)" if res.stopped_by_signal else "", summary)
    return 0
