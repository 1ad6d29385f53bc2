"""Swagger UI (``/docs``) in a real headless Chromium against a live ``bentolite serve`` of the
README's iris example: "Try it out", then "Execute" on its predict API answers 200.

The screenshot of the page after the call is kept at ``build/docs_try_it_out.png``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chromium import Chromium, chromium_path, in_ci
from live_server import Server

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / "build" / "docs_try_it_out.png"
OPERATION = "#operations-APIs-predict"
#: the row Swagger UI adds under "Server response" once the call has answered
ANSWER = f"{OPERATION} .live-responses-table tr.response"


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    if executable is None:
        if in_ci():
            pytest.fail("chromium is not installed (.ci/run installs Debian's chromium package)")
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    with Chromium(executable) as chromium:
        yield chromium


def _click(selector: str) -> str:
    """JavaScript that clicks the element ``selector`` names, true once it is there."""
    return f"(el => el ? (el.click(), true) : false)(document.querySelector({json.dumps(selector)}))"


def _text(selector: str) -> str:
    return f"document.querySelector({json.dumps(selector)})?.innerText"


def test_try_it_out_on_the_iris_api_answers_200(browser, iris_example_bundle, tmp_path):
    server = Server(str(iris_example_bundle), home=tmp_path, log=tmp_path / "server.log")
    try:
        browser.send("Page.enable")
        browser.navigate(f"{server.base}/docs")
        browser.wait_for(_click(f"{OPERATION} .opblock-summary-control"))  # unfold the operation
        browser.wait_for(_click(f"{OPERATION} .try-out__btn"))
        body = browser.wait_for(f"document.querySelector('{OPERATION} .body-param__text')?.value")
        browser.wait_for(_click(f"{OPERATION} .btn.execute"))
        status = browser.wait_for(_text(f"{ANSWER} .response-col_status"))
        answer = browser.evaluate(_text(f"{ANSWER} .response-col_description pre"))
    finally:
        browser.screenshot(SCREENSHOT)  # of the page as the test left it, passed or failed
        server.stop()
    assert json.loads(body) == [[5.1, 3.5, 1.4, 0.2]]  # the API's OpenAPI example, filled in by Swagger
    assert status.strip() == "200", f"Swagger UI shows {status!r}: {answer}"
    assert json.loads(answer) == [0]  # setosa
    assert SCREENSHOT.read_bytes().startswith(b"\x89PNG")
