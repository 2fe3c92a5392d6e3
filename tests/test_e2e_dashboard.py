"""End to end: the whole local pipeline runs (`iotpipe run`, on free ports in a temporary home) and headless
Chromium (Debian's package) opens the bridge's built-in dashboard and sees its values update live.

The browser is driven over the DevTools protocol (tests/browser_kit.py): the test reads what the page shows (simulated
time, records received, table rows, points in the uPlot charts), waits for the first daily aggregate to reach the
page and checks it against the bridge's HTTP API (HBase), and saves a screenshot to tests/artifacts/dashboard.png.

When the pipeline registry has no stream job (it is built in parallel), the stream job's output topics are fed by
`python -m ws_bridge.demo_feed` instead, so the rest of the pipeline (sync worker -> HBase, bridge, page) is still
exercised end to end; the test prints which source it used.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from iotpipe_stack import pipeline
from iotpipe_stack.ports import free_ports

sys.path.insert(0, str(Path(__file__).parent))
from browser_kit import DevTools, chromium

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "artifacts"
START_TIMEOUT = 900.0
LIVE_TIMEOUT = 300.0
AGGREGATES_WAIT = 600.0  # the first simulated day must close (watermark or idle limit) on a busy machine
# the pipeline's start, the first aggregate, then the checks: each wait fails with its own message before this does
pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.slow,
              pytest.mark.timeout(START_TIMEOUT + AGGREGATES_WAIT + 2 * LIVE_TIMEOUT)]


def stop(proc: subprocess.Popen[Any] | None, timeout: float = 120) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(30)


@pytest.fixture
def running_pipeline(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """`iotpipe run` in the foreground (as `make run` does) on free ports; yields the dashboard URL."""
    kafka, controller, zk, thrift, bridge = free_ports(5)
    env = {**os.environ, "IOTPIPE_HOME": str(tmp_path / "home"), "IOTPIPE_KAFKA_PORT": str(kafka),
           "IOTPIPE_KAFKA_CONTROLLER_PORT": str(controller), "IOTPIPE_ZK_PORT": str(zk),
           "IOTPIPE_HBASE_PORT": str(thrift), "IOTPIPE_BRIDGE_PORT": str(bridge), "PYTHONUNBUFFERED": "1"}
    log_path = tmp_path / "iotpipe-run.log"
    log = log_path.open("w")
    run = subprocess.Popen([sys.executable, "-m", "iotpipe_stack", "run"], env=env, stdout=log,
                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO)
    feeder: subprocess.Popen[Any] | None = None
    try:
        deadline = time.monotonic() + START_TIMEOUT
        url = None
        while url is None:
            text = log_path.read_text()
            match = re.search(r"ws-bridge: open (http://\S+)", text)
            if match:
                url = match.group(1)
            elif run.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"`iotpipe run` did not print the dashboard address:\n{text[-4000:]}", pytrace=False)
            else:
                time.sleep(1)
        names = {p.name for p in pipeline.PROCESSES}
        source = "stream job" if any("stream" in n for n in names) else "ws_bridge.demo_feed"
        if source != "stream job":
            feeder = subprocess.Popen([sys.executable, "-m", "ws_bridge.demo_feed", "--steps-per-s", "4"],
                                      env={**env, "IOTPIPE_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka}"},
                                      stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO)
        print(f"pipeline processes: {sorted(names)}; stream-job output from: {source}; dashboard {url}")
        yield {"url": url, "source": source, "log": log_path}
    finally:
        stop(feeder, 30)
        stop(run, 180)
        log.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    with chromium(tmp_path / "chromium-profile") as tools:
        yield tools


PAGE_STATE = """(() => { try { return JSON.stringify({
  records: window.iotpipe ? window.iotpipe.records : 0,
  sim: document.getElementById('sim-time').textContent,
  connection: document.getElementById('conn').textContent,
  site: document.getElementById('site').value,
  hvac1Rows: document.querySelectorAll('#p-hvac1 table tr').length - 1,
  thPoints: Charts.points(document.querySelector('#p-th .chart')),
  miacPoints: Charts.points(document.querySelector('#p-miac .chart')),
  aggRows: [...document.querySelectorAll('#p-aggs table tr')].slice(1)
    .map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)),
}); } catch (e) { return JSON.stringify({error: String(e)}); } })()"""
NOT_YET = {"records": 0, "sim": "", "connection": "", "site": "", "hvac1Rows": 0, "thPoints": 0, "miacPoints": 0,
           "aggRows": []}
DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
AGGREGATE_NAME = re.compile(r"AggDay(Diff|Rest|Mov)?\[[A-Za-z0-9]+\]")


def page_state(tools: DevTools) -> dict[str, Any]:
    value = tools.evaluate(PAGE_STATE)
    state: dict[str, Any] = json.loads(value) if value else {"error": "no value"}
    return state if "error" not in state else {**NOT_YET, **state}  # the page is still loading


def wait_for(tools: DevTools, what: str, check: Any, timeout: float = LIVE_TIMEOUT) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    state = page_state(tools)
    while not check(state):
        if time.monotonic() > deadline:
            raise AssertionError(f"the dashboard never showed {what}; last state {state}")
        time.sleep(1)
        state = page_state(tools)
    return state


def daily_aggregates(state: dict[str, Any]) -> list[list[str]]:
    """Rows of the latest-aggregates table that are daily aggregates: [day, name, "value unit", count, revision]."""
    return [row for row in state["aggRows"]
            if len(row) == 5 and DAY.fullmatch(row[0]) and AGGREGATE_NAME.fullmatch(row[1])]


def stored_aggregates(url: str, site: str) -> list[dict[str, Any]]:
    """The site's aggregates as the bridge's HTTP API reads them from HBase."""
    query = f"{url}api/v1/aggregates?site={site}&last=5"  # url: the bridge's own http:// address, from its log
    with urllib.request.urlopen(query, timeout=60) as response:  # noqa: S310
        rows: list[dict[str, Any]] = json.load(response)
    return rows


def test_dashboard_shows_the_pipeline_live(running_pipeline: dict[str, Any], browser: DevTools) -> None:
    browser.call("Page.enable")
    browser.call("Page.navigate", url=running_pipeline["url"])
    first = wait_for(browser, "data (simulated time, HVAC1 rows, TH chart)",
                     lambda s: s["records"] > 0 and s["sim"] not in ("", "\u2013") and s["hvac1Rows"] > 0
                     and s["thPoints"] > 0)
    assert first["connection"] == "live" and first["site"]
    # values update live: simulated time moves on and more records arrive, without reloading the page
    later = wait_for(browser, "a live update", lambda s: s["sim"] != first["sim"] and s["records"] > first["records"])
    assert later["sim"] > first["sim"]
    # the first daily aggregate reaches the page once the stream job closes a simulated day (a past bug: none did)
    shown = wait_for(browser, "a daily aggregate", lambda s: bool(daily_aggregates(s)), timeout=AGGREGATES_WAIT)
    for day, name, value_unit, count, _revision in daily_aggregates(shown):
        value, _, unit = value_unit.partition(" ")
        assert re.fullmatch(r"-?[0-9]+\.[0-9]{2}", value) and unit in ("C", "Wh", "l", "count") and int(count) > 0, \
            f"not a daily aggregate: {day} {name} {value_unit} {count}"
    # ... and what the page shows is what the pipeline stored (sync worker -> HBase -> the bridge's HTTP API; the
    # sync worker may store it a moment after the page got it live)
    deadline = time.monotonic() + LIVE_TIMEOUT
    while True:
        state = page_state(browser)
        on_page = {(row[0], row[1], row[2]) for row in daily_aggregates(state)}
        stored = {(r["day"], r["name"], f"{r['value']:.2f} {r['unit']}")
                  for r in stored_aggregates(running_pipeline["url"], state["site"])}
        if on_page & stored:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"no aggregate on the page matches HBase: page {sorted(on_page)[:10]}, "
                                 f"HBase {sorted(stored)[:10]}")
        time.sleep(2)
    day, name, value_unit = sorted(on_page & stored)[0]
    browser.evaluate("new Promise((done) => setTimeout(done, 2000))", await_promise=True)  # the last frame rendered
    browser.screenshot(ARTIFACTS / "dashboard.png")
    print(f"screenshot: {ARTIFACTS / 'dashboard.png'}; first {first}; aggregate {day} {name} {value_unit};"
          f" later {page_state(browser)}")
