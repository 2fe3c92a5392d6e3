"""The dashboard with auth on, in headless Chromium against the real bridge (its own process, real Kafka and HBase):
the token typed into the page is sent only in `Authorization` headers, never in a URL; the websocket opens with a
short-lived ticket from `POST /api/v1/ws-ticket`, a new one for every reconnect; the token stays in the tab's
sessionStorage (not localStorage); data flows under the bridge's CSP without violations.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from browser_kit import DevTools, chromium
from dashboard_kit import WAIT, Bridge, reading, run_bridge

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.kafka, pytest.mark.hbase]

TOKEN = f"tok-{uuid.uuid4().hex}"
WATCH = """window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.violatedDirective));
"""
STATE = """(() => { try { return JSON.stringify({
  connection: document.getElementById('conn').textContent,
  askingForToken: !document.getElementById('auth').hidden,
  hvac1: document.getElementById('p-hvac1').textContent,
  csp: window.__csp || [],
  session: sessionStorage.getItem('iotpipe-token'),
  local: Object.keys(localStorage).map((k) => localStorage.getItem(k)),
}); } catch (e) { return JSON.stringify({connection: 'page loading', askingForToken: false, hvac1: '', csp: [],
  session: null, local: []}); } })()"""


@pytest.fixture
def bridge(kafka_service: Any, hbase_service: Any, tmp_path: Path) -> Iterator[Bridge]:
    with run_bridge(kafka_service, hbase_service, tmp_path, IOTPIPE_BRIDGE_TOKEN=TOKEN) as running:
        yield running


def state(tools: DevTools) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(tools.evaluate(STATE))
    return found


def wait_until(tools: DevTools, what: str, check: Callable[[dict[str, Any]], bool],
               action: Callable[[], None] | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT
    while True:
        if action is not None:
            action()
        now = state(tools)
        if check(now):
            return now
        if time.monotonic() > deadline:
            raise AssertionError(f"the dashboard never showed {what}; last state {now}")
        time.sleep(1)


def test_token_only_in_headers_and_websocket_by_ticket(bridge: Bridge, tmp_path: Path) -> None:
    site = f"auth{uuid.uuid4().hex[:6]}"
    with chromium(tmp_path / "chromium-profile") as page:
        page.call("Page.enable")
        page.call("Network.enable")
        page.call("Page.addScriptToEvaluateOnNewDocument", source=WATCH)
        page.call("Page.navigate", url=f"{bridge.url}?site={site}")
        wait_until(page, "the token field", lambda s: s["askingForToken"] and s["connection"] == "token needed")

        page.evaluate(f"document.getElementById('token').value = {json.dumps(TOKEN)};"
                      "document.getElementById('auth').requestSubmit()")
        wait_until(page, "a live connection", lambda s: s["connection"] == "live")
        record = reading(site, "HVAC1", "2020-01-02T00:15:00Z", 12.5, "Wh", 1)
        wait_until(page, "a reading", lambda s: "12.50" in s["hvac1"], lambda: bridge.send("raw", record))

        # a reconnect fetches a new ticket
        sockets_before = len(websocket_urls(page))
        page.evaluate("window.iotpipe.ws.close()")
        wait_until(page, "a second live connection",
                   lambda s: s["connection"] == "live" and len(websocket_urls(page)) > sockets_before)
        final = state(page)

    urls = request_urls(page) + websocket_urls(page)
    assert not [u for u in urls if TOKEN in u], f"the token appeared in a URL: {[u for u in urls if TOKEN in u]}"
    sockets = websocket_urls(page)
    with_ticket = [u for u in sockets if "/ws?ticket=" in u]
    assert len(with_ticket) >= 2 and len(set(with_ticket)) == len(with_ticket), \
        f"every websocket connect after login needs its own ticket: {sockets}"
    api_calls = [e["params"]["request"] for e in page.events if e.get("method") == "Network.requestWillBeSent"
                 and "/api/v1/" in e["params"]["request"]["url"]]
    authorization = [{k.lower(): v for k, v in r["headers"].items()}.get("authorization") for r in api_calls]
    assert f"Bearer {TOKEN}" in authorization, \
        "no API call carried the token in its Authorization header"
    assert any(r["url"].endswith("/api/v1/ws-ticket") and r["method"] == "POST" for r in api_calls)
    assert final["session"] == TOKEN and TOKEN not in final["local"], "the token belongs in sessionStorage only"
    assert final["csp"] == [], f"CSP violations: {final['csp']}"


def request_urls(page: DevTools) -> list[str]:
    return [e["params"]["request"]["url"] for e in page.events if e.get("method") == "Network.requestWillBeSent"]


def websocket_urls(page: DevTools) -> list[str]:
    return [e["params"]["url"] for e in page.events if e.get("method") == "Network.webSocketCreated"]
