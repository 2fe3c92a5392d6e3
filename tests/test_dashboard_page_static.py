"""The dashboard page's files, read as text (no browser): the rules the browser tests rely on, checked on every file so
a new panel cannot slip back to markup built from data, inline script or style, or a token in a URL.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[1] / "services" / "ws_bridge" / "ws_bridge" / "static"
PAGE_SCRIPTS = sorted(p for p in STATIC.glob("*.js"))
# ways to turn a string into markup or code
HTML_SINKS = re.compile(r"\.innerHTML\b|\.outerHTML\b|insertAdjacentHTML|document\.write|\beval\(|new Function\(|"
                        r"setAttribute\(\s*[\"'](style|on)")


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline_script = False
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_script = True


def page() -> Tags:
    tags = Tags()
    tags.feed((STATIC / "index.html").read_text(encoding="utf-8"))
    return tags


def test_the_page_has_scripts_to_check() -> None:
    assert {p.name for p in PAGE_SCRIPTS} >= {"dashboard.js", "charts.js"}


@pytest.mark.parametrize("script", PAGE_SCRIPTS, ids=lambda p: p.name)
def test_no_script_turns_strings_into_markup_or_code(script: Path) -> None:
    text = script.read_text(encoding="utf-8")
    found = [m.group(0) for m in HTML_SINKS.finditer(text)]
    assert found == [], f"{script.name} uses {found}: build DOM nodes and set textContent instead"


def test_the_token_never_goes_into_a_url_or_local_storage() -> None:
    text = (STATIC / "dashboard.js").read_text(encoding="utf-8")
    assert "access_token" not in text
    assert "localStorage.setItem(TOKEN_KEY" not in text and "sessionStorage.setItem(TOKEN_KEY" in text
    assert "Authorization" in text and "api/v1/ws-ticket" in text


def test_the_page_has_no_inline_script_style_or_handlers() -> None:
    tags = page()
    assert not tags.inline_script, "index.html has an inline <script>: the CSP (script-src 'self') blocks it"
    for tag, attrs in tags.tags:
        assert tag != "style", "index.html has a <style> element: the CSP (style-src 'self') blocks it"
        assert "style" not in attrs, f"<{tag}> has a style attribute: the CSP (style-src 'self') blocks it"
        handlers = [a for a in attrs if a.startswith("on")]
        assert not handlers, f"<{tag}> has inline handlers {handlers}"


def test_everything_the_page_loads_is_a_same_origin_file_that_exists() -> None:
    loaded = [attrs.get("src") or attrs.get("href") for tag, attrs in page().tags
              if tag == "script" or (tag == "link" and attrs.get("rel") == "stylesheet")]
    assert loaded, "index.html loads nothing"
    for ref in loaded:
        assert ref is not None and ref.startswith("static/") and "//" not in ref, f"not a same-origin file: {ref}"
        path = STATIC / ref.removeprefix("static/")
        hint = " (uPlot: run `make setup`, which runs services/ws_bridge/fetch-uplot.sh)" if "vendor/" in ref else ""
        assert path.is_file(), f"index.html loads {ref}, which does not exist{hint}"
