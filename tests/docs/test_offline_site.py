"""The documentation site works offline: built strictly, it references no CDN, and headless
Chromium, with every request off this machine blocked, draws its Mermaid diagrams. Screenshots
of three pages are kept under artifacts/docs/ (git-ignored; ``$ACCOUNT_LIFECYCLE_ARTIFACTS``
moves them). Skips on a laptop without Chromium, fails under ``CI=true``."""

from __future__ import annotations

import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("ACCOUNT_LIFECYCLE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
PAGES = ("", "concepts/", "operations/")  # each has Mermaid diagrams
#: A script or a stylesheet (not a plain link) loaded from another host.
_REMOTE = re.compile(r"""<(?:script[^>]*\ssrc|link[^>]*\shref)=["'](?:https?:)?//""")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return out


def test_no_page_loads_anything_from_elsewhere(site: Path) -> None:
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 10
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert not _REMOTE.findall(text), f"{page.relative_to(site)} loads a remote script or stylesheet"
    assert (site / "assets" / "javascripts" / "mermaid.min.js").is_file()


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[str]:
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.RequestHandlerClass.log_message = lambda *args: None  # type: ignore[method-assign]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def test_diagrams_are_drawn_offline(server: str, tmp_path: Path) -> None:
    if not Path(CHROMIUM).is_file():
        reason = f"no Chromium at {CHROMIUM}: apt-get install chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true, so this is a failure)")
        pytest.skip(reason)
    from playwright.sync_api import Route, sync_playwright

    shots = Path(os.environ.get("ACCOUNT_LIFECYCLE_ARTIFACTS") or ROOT / "artifacts") / "docs"
    shots.mkdir(parents=True, exist_ok=True)
    blocked: list[str] = []

    def only_local(route: Route) -> None:
        if route.request.url.startswith(server):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as api:
        browser = api.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.route("**/*", only_local)
            for path in PAGES:
                page.goto(server + path)
                # Material swaps each <pre class="mermaid"> source for a drawn diagram in a
                # (closed) shadow root: no source left, and every diagram box has a real size.
                page.wait_for_function(
                    "() => document.querySelectorAll('pre.mermaid').length === 0"
                    " && document.querySelectorAll('div.mermaid').length > 0",
                    timeout=30_000,
                )
                heights = page.evaluate(
                    "() => [...document.querySelectorAll('div.mermaid')]"
                    ".map(d => d.getBoundingClientRect().height)"
                )
                assert min(heights) > 100, f"{path}: diagram heights {heights}"
                page.locator("div.mermaid").first.scroll_into_view_if_needed()
                page.screenshot(path=str(shots / f"{path.strip('/') or 'index'}.png"))
        finally:
            browser.close()
    assert blocked == []
