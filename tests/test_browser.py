"""The chat page in a real browser: Debian's Chromium driven by Playwright, against a live
waitress server on 127.0.0.1 serving the real index."""

from __future__ import annotations

import shutil
import threading

import pytest

from qa_service.web import create_app

from .conftest import SOURCES

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def live_url(real_service):
    import waitress

    server = waitress.create_server(create_app(real_service.settings, real_service),
                                    host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}"
    server.close()


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_url):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(live_url + "/")
    yield page
    context.close()
    assert not errors, errors


def _ask(page, question: str):
    before = page.locator(".turn").count()
    page.fill("#question", question)
    page.press("#question", "Enter")
    turn = page.locator(".turn").nth(before)
    turn.locator(".a:not(.busy)").wait_for(timeout=30_000)
    return turn


def test_ask_open_citation_follow_up(page, artifacts):
    turn = _ask(page, "What did the 1996 license contract cover?")
    assert page.input_value("#question") == ""  # the box clears
    assert "Su-27SK" in turn.locator(".answer-text").inner_text()

    turn = _ask(page, "How many AL-31F engines were ordered in the February contract?")
    assert turn.locator("[data-testid=short-answer]").inner_text() == "140"

    turn.locator(".marker").first.click()
    view = page.locator("#citation-view")
    view.wait_for(state="visible")
    assert "140 AL-31F engines" in view.locator("mark").inner_text()
    assert "Military-Technical Cooperation" in page.locator("#citation-meta").inner_text()

    page.click("#open-document")
    page.locator("#document-text mark").wait_for(state="visible")
    assert "140 AL-31F engines" in page.locator("#document-text mark").inner_text()

    follow = _ask(page, "Who said China's share of Russian defense exports was close to 15 "
                        "percent?")
    assert "Dzirkaln" in follow.inner_text()
    follow_up = _ask(page, "Which news agency did he speak to?")
    assert "Interfax" in follow_up.locator(".answer-text").inner_text()
    page.screenshot(path=str(artifacts / "chat-answered.png"), full_page=True)


def test_not_in_sources_looks_different(page):
    turn = _ask(page, "What is the capital of Australia?")
    assert turn.locator(".a.not-found").count() == 1
    assert "not in the sources" in turn.inner_text().lower()


def test_script_question_renders_as_text(page):
    page.evaluate("window.__pwned = false")
    turn = _ask(page, "<script>window.__pwned = true</script><img src=x onerror=window.__pwned=true>")
    assert "<script>" in turn.locator(".q").inner_text()
    assert page.evaluate("window.__pwned") is False
    assert turn.locator(".q script, .q img").count() == 0


def test_server_error_is_shown(page):
    page.route("**/api/answer", lambda route: route.fulfill(
        status=503, content_type="application/json",
        body='{"error": {"code": "index_not_ready", "message": "no index has been built"}}'))
    turn = _ask(page, "Anything?")
    assert "no index has been built" in turn.locator(".a.error").inner_text()


def test_sources_panel_limits_questions(page):
    items = page.locator("#sources-list li")
    items.first.wait_for()
    shipped = len([p for p in SOURCES.iterdir() if p.is_file()])
    assert items.count() == shipped
    page.locator("#sources-list input[value='rostec-cooperation-with-china.txt']").check()
    assert f"1 of {shipped}" in page.inner_text("#scope")
    seen = []
    page.on("request", lambda r: seen.append(r.post_data) if r.url.endswith("/api/answer") else None)
    _ask(page, "When were diplomatic relations established?")
    assert "rostec-cooperation-with-china.txt" in seen[-1]
