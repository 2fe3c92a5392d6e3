"""Hostile data against the built-in dashboard, in headless Chromium (Debian's package).

The real bridge (`python -m ws_bridge`, its own process) tails the real Kafka and reads the real HBase; these tests
write hostile messages to the stream job's output topics, the way anyone who can write to those topics could, and
check what the page does with them:

- the XSS test: `<img onerror>` / `<script>` values in the free-text fields the message contract allows (a late
  record's reason, a dead letter's detail and payload) are shown as literal text, and nothing runs; hostile values
  in the fields the contract constrains (an aggregate's name and unit, a late record's day, a dead letter's reason
  and source_topic) never reach the page: the bridge refuses those messages (iotcommon.wire) and counts them;
- the malicious-data test: hostile strings (`<img onerror>`, `</script>`, RTL overrides) and 4 MB values on every
  output topic; the page runs none of it, shows the free-text ones as text, and stays responsive (it still answers,
  and a normal record sent after the flood still reaches the screen); the bridge counts the messages it refused.

"Nothing runs" is checked three ways: no hostile script left its mark (``window.__pwned``), the DOM holds no element
made from data (no img/script/iframe/object/embed, no on* attribute in the panels), and the browser reported no
Content-Security-Policy violation (a blocked attempt counts as an attempt).
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from browser_kit import DevTools, chromium
from dashboard_kit import BIG, WAIT, Bridge, aggregate, dead, late, reading, run_bridge

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.kafka, pytest.mark.hbase]


def mark(where: str) -> str:
    """An <img onerror> that, if it ever runs, records ``where`` in window.__pwned."""
    return f'<img src=x onerror="(window.__pwned=window.__pwned||[]).push(\'{where}\')">'


def script(where: str) -> str:
    return f"</script><script>(window.__pwned=window.__pwned||[]).push('{where}')</script>"


RTL = "\u202egnp.exe\u202c"  # right-to-left override: shows as "exe.png"

# Observes the page from before its first script: CSP violations, and a hook scripts would call
WATCH = """window.__csp = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
"""

EVIDENCE = """(() => JSON.stringify({
  connection: (document.getElementById('conn') || {}).textContent,
  records: window.iotpipe ? window.iotpipe.records : null,
  pwned: [...new Set(window.__pwned || [])],  // which hostile values ran (each may have run many times)
  csp: window.__csp || [],
  injected: [...document.querySelectorAll('main *, header *')].filter((e) =>
      ['IMG', 'SCRIPT', 'IFRAME', 'OBJECT', 'EMBED'].includes(e.tagName)
      || [...e.attributes].some((a) => a.name.toLowerCase().startsWith('on'))).map((e) => e.outerHTML.slice(0, 120)),
}))()"""


def panel_text(tools: DevTools, panel: str) -> str:
    text = tools.evaluate(f"(() => {{ const p = document.getElementById({json.dumps(panel)}); "
                          "return p ? p.textContent : ''; })()")
    return text if isinstance(text, str) else ""


def evidence(tools: DevTools) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(tools.evaluate(EVIDENCE))
    return found


@pytest.fixture(scope="module")
def bridge(kafka_service: Any, hbase_service: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bridge]:
    with run_bridge(kafka_service, hbase_service, tmp_path_factory.mktemp("bridge")) as running:
        yield running


@pytest.fixture
def page(tmp_path: Path) -> Iterator[DevTools]:
    with chromium(tmp_path / "chromium-profile") as tools:
        tools.call("Page.enable")
        tools.call("Page.addScriptToEvaluateOnNewDocument", source=WATCH)
        yield tools


def bad_records(bridge: Bridge) -> dict[str, float]:
    """The bridge's count of refused Kafka records per stream (its /metrics)."""
    with urllib.request.urlopen(f"{bridge.url}metrics", timeout=30) as response:  # noqa: S310 (the bridge's http URL)
        text = response.read().decode()
    prefix = 'iotpipe_bridge_bad_records_total{stream="'
    return {line[len(prefix):].split('"')[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line.startswith(prefix)}


def assert_refused(bridge: Bridge, streams: set[str]) -> None:
    """The bridge counts a refused record of each of ``streams`` (it may still be reading the last ones sent)."""
    deadline = time.monotonic() + WAIT
    while not all((bad := bad_records(bridge)).get(stream, 0) >= 1 for stream in streams):
        if time.monotonic() > deadline:
            raise AssertionError(f"the bridge did not count the refused records of {sorted(streams)}: {bad}")
        time.sleep(1)


def open_site(tools: DevTools, bridge: Bridge, site: str) -> None:
    tools.call("Page.navigate", url=f"{bridge.url}?site={site}")


def resend_until(tools: DevTools, what: str, send: Callable[[], None], shown: Callable[[], bool]) -> None:
    """Send until the page shows it: the page subscribes some time after it loads, and live data is not replayed."""
    deadline = time.monotonic() + WAIT
    while True:
        send()
        for _ in range(5):
            time.sleep(1)
            if shown():
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"the dashboard never showed {what}; page state: {evidence(tools)}")


# --- the tests ---------------------------------------------------------------------------------------------------


def test_hostile_values_are_shown_as_text_and_never_run(bridge: Bridge, page: DevTools) -> None:
    site = f"xss{uuid.uuid4().hex[:6]}"
    hostile = {  # free-text field -> (panel it shows in, value)
        "late reason": ("p-late", mark("late reason")),
        "dead letter detail": ("p-dead", script("dead letter detail")),
        "dead letter payload": ("p-dead", mark("dead letter payload")),
    }
    value = {field: v for field, (_, v) in hostile.items()}
    refused = {  # constrained field -> a message the contract refuses
        "aggregate name": ("aggregates", aggregate(site, f"AggDay[{mark('aggregate name')}]", "C")),
        "aggregate unit": ("aggregates", aggregate(site, "AggDay[TH1]", mark("aggregate unit"))),
        "late day": ("late", late(site, "beyond-allowed-lateness", mark("late day"), seq=2)),
        "dead letter reason": ("deadletters", dead(script("dead letter reason"), "iotpipe.readings", offset=3)),
        "dead letter source_topic": ("deadletters", dead("unparsable", mark("dead letter source_topic"), offset=4)),
    }
    messages = [
        ("raw", reading(site, "HVAC1", "2020-01-02T00:15:00Z", 12.5, "Wh", 1)),  # sets the page's simulated time
        *refused.values(),
        ("late", late(site, value["late reason"], "2020-01-01", seq=1)),
        ("deadletters", dead("unparsable", "iotpipe.readings", offset=1, detail=value["dead letter detail"])),
        ("deadletters", dead("schema", "iotpipe.readings", offset=2, payload=value["dead letter payload"].encode())),
    ]
    open_site(page, bridge, site)

    def shown_or_ran() -> bool:  # every value is on the page as text, or something ran or was injected
        found = evidence(page)
        if found["pwned"] or found["injected"] or found["csp"]:
            return True
        return all(v in panel_text(page, panel) for panel, v in hostile.values())

    def send() -> None:
        for stream, message in messages:
            bridge.send(stream, message)

    resend_until(page, "the hostile values", send, shown_or_ran)
    page.evaluate("new Promise((done) => setTimeout(done, 1000))", await_promise=True)  # one more render
    found = evidence(page)
    assert found["pwned"] == [], f"hostile values ran as script in the page: {found['pwned']}"
    assert found["injected"] == [], f"elements were built from data: {found['injected']}"
    assert found["csp"] == [], f"the page tried to run something the CSP blocked: {found['csp']}"
    for field, (panel, v) in hostile.items():
        assert v in panel_text(page, panel), f"{field} is not shown as literal text in #{panel}"
    page_text = "".join(panel_text(page, panel) for panel in ("p-aggs", "p-late", "p-dead"))
    for field in refused:
        assert field not in page_text, f"a message with a hostile {field} reached the page"
    assert_refused(bridge, {stream for stream, _ in refused.values()})


def test_malicious_data_on_every_topic_runs_nothing_and_the_page_stays_responsive(bridge: Bridge,
                                                                                   page: DevTools) -> None:
    site = f"mal{uuid.uuid4().hex[:6]}"
    words = [mark("malicious"), script("malicious"), RTL]
    bad = " ".join(words)
    huge = (bad + " ") * (BIG // (len(bad) + 1))  # about 4 MB of hostile text
    ts = "2020-01-01T10:15:00Z"
    flood: list[tuple[str, dict[str, Any]]] = [  # hostile text where the contract allows free text
        ("raw", reading(site, "HVAC1", ts, 10.0, "Wh", 1)),
        ("late", late(site, bad, "2020-01-01", seq=4)),
        ("late", late(site, huge, "2020-01-01", seq=5)),
        ("deadletters", dead("unparsable", "iotpipe.readings", offset=10, detail=bad, payload=bad.encode())),
        ("deadletters", dead("unparsable", "iotpipe.readings", offset=11, detail=huge, payload=huge.encode())),
        # and where it does not: the bridge refuses these
        ("raw", reading(site, "HVAC1", ts, 10.0, bad, 2)),
        ("raw", reading(site, "TH1", ts, 20.0, huge, 3)),
        ("raw", reading(site, bad, ts, 1.0, "C", 4)),
        ("aggregates", aggregate(site, f"AggDay[{bad}]", bad, day=bad)),
        ("aggregates", aggregate(site, "AggDay[TH2]", huge, day="2020-01-01")),
        ("late", late(site, bad, bad, seq=6, unit=bad)),
        ("deadletters", dead(bad, bad, offset=12, detail=bad, payload=bad.encode())),
    ]
    open_site(page, bridge, site)

    def flooded() -> bool:
        return all(RTL in panel_text(page, panel) for panel in ("p-late", "p-dead"))

    def send() -> None:
        for stream, message in flood:
            bridge.send(stream, message)

    resend_until(page, "the hostile records", send, flooded)
    # still responsive: a normal aggregate sent after the flood reaches the screen
    after = aggregate(site, "AggDay[TH1]", "C", day="2020-01-09", value=12.25)
    resend_until(page, "a normal aggregate after the flood", lambda: bridge.send("aggregates", after),
                 lambda: "2020-01-09" in panel_text(page, "p-aggs"))
    found = evidence(page)
    assert found["pwned"] == [], f"hostile values ran as script in the page: {found['pwned']}"
    assert found["injected"] == [], f"elements were built from data: {found['injected']}"
    assert found["csp"] == [], f"the page tried to run something the CSP blocked: {found['csp']}"
    for panel in ("p-late", "p-dead"):
        assert mark("malicious") in panel_text(page, panel), f"#{panel} does not show the hostile text as text"
    assert "malicious" not in panel_text(page, "p-aggs"), "a refused aggregate reached the page"
    assert_refused(bridge, {"raw", "aggregates", "late", "deadletters"})
