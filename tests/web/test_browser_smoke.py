"""The browser test infrastructure itself: Chromium loads coffer's pages from a running server
(SQLite and PostgreSQL), axe-core runs from the bundled script and does fail on a violation, and
a failing test leaves a screenshot behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import Browser, Page

from tests.fixtures.browser import CofferServer, StartServer, assert_accessible, violations

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _shows_the_api_docs(page: Page, server: CofferServer, screenshot: Path) -> None:
    page.goto(server.url("/docs"))
    page.get_by_role("heading", name="coffer").first.wait_for()
    page.screenshot(path=screenshot)
    assert screenshot.read_bytes().startswith(PNG_SIGNATURE)


def test_chromium_loads_the_docs_page(
    page: Page, coffer_server: CofferServer, tmp_path: Path
) -> None:
    _shows_the_api_docs(page, coffer_server, tmp_path / "docs.png")
    health = page.goto(coffer_server.url("/healthz"))
    assert health is not None
    assert health.status == 200


def test_chromium_against_a_postgresql_server(
    page: Page, start_server: StartServer, tmp_path: Path
) -> None:
    with start_server(backend="postgres") as server:
        _shows_the_api_docs(page, server, tmp_path / "docs.png")


def test_axe_passes_a_labelled_page_and_fails_an_unlabelled_one(page: Page) -> None:
    page.set_content(
        '<!doctype html><html lang="en"><head><title>Fine</title></head><body><main>'
        '<h1>Fine</h1><label for="amount">Amount</label><input id="amount" name="amount">'
        "</main></body></html>"
    )
    assert_accessible(page)

    page.set_content(
        '<!doctype html><html lang="en"><head><title>Broken</title></head><body><main>'
        '<h1>Broken</h1><img src="data:,"><button></button></main></body></html>'
    )
    found = {violation["id"] for violation in violations(page)}
    assert {"image-alt", "button-name"} <= found


FAILING_TEST = """
pytest_plugins = [
    "tests.fixtures.databases",
    "tests.fixtures.sms",
    "tests.fixtures.identity",
    "tests.fixtures.browser",
]


def test_fails_on_a_page(page):
    page.set_content("<html lang=en><title>x</title><h1>About to fail</h1></html>")
    assert page.title() == "not this"
"""


def test_a_failing_browser_test_leaves_a_screenshot(browser: Browser, tmp_path: Path) -> None:
    # `browser` only for its rule: without Chromium this skips (fails under CI), as the inner
    # test would.
    (tmp_path / "test_inner.py").write_text(FAILING_TEST)
    results = tmp_path / "results"
    repository = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_inner.py"],
        cwd=tmp_path,
        env=os.environ | {"COFFER_TEST_RESULTS": str(results), "PYTHONPATH": str(repository)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed" in done.stdout, done.stdout
    shots = list(results.glob("test_inner.py_test_fails_on_a_page/*.png"))
    assert len(shots) == 1, (list(results.rglob("*")), done.stdout)
    assert shots[0].read_bytes().startswith(PNG_SIGNATURE)
