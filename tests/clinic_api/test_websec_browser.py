"""The pages under their Content-Security-Policy in Debian's Chromium: no violations on any
page, and same-origin form posts pass the Origin check."""

from __future__ import annotations

import re
import warnings

import pytest

from tests.clinic_api.conftest import Seed

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from playwright.sync_api import Browser, ConsoleMessage, Page, expect

pytestmark = pytest.mark.browser

# Recorded from before the first byte is parsed (Playwright's init scripts are not subject to CSP).
WATCH = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
    e => window.__csp.push(e.violatedDirective + ' ' + (e.blockedURI || 'inline')));
"""


def _violations(page: Page, console: list[ConsoleMessage]) -> list[str]:
    events: list[str] = page.evaluate("window.__csp")
    logged = [m.text for m in console if "Content Security Policy" in m.text]
    return events + logged


def test_pages_run_without_csp_violations(browser: Browser, server: str, fresh_seed: Seed) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="sv-SE")
    page.add_init_script(WATCH)
    console: list[ConsoleMessage] = []
    # A bound builtin cannot carry Playwright's handler attribute: wrap it.
    page.on("console", lambda m: console.append(m))  # noqa: PLW0108

    page.goto(server + "/")
    expect(page).to_have_url(re.compile(r"/dev-issuer/authorize\?"))
    assert _violations(page, console) == []
    page.get_by_role("button", name="Sjuksköterska Anna Demo").click()  # a form post
    expect(page).to_have_url(re.compile(r"/ui/alerts$"))
    expect(page.get_by_role("heading", name="Larmkö")).to_be_visible()
    # The stylesheet applies (style-src 'self'): the header bar has its dark background.
    bg = page.evaluate("getComputedStyle(document.querySelector('header.top')).backgroundColor")
    assert bg == "rgb(11, 46, 79)"
    assert _violations(page, console) == []

    # A same-origin form post with the cookie: Chromium sends Origin, the check lets it through.
    aid = fresh_seed.alert_id("P-DEMO0002")
    page.locator(f'li[data-alert-id="{aid}"]').get_by_role("button", name=re.compile("^Kvittera larm")).click()
    expect(page).to_have_url(re.compile(r"/ui/alerts\?(.*&)?done=acknowledged$"))
    # The queue shows open and acknowledged alerts by default: the card stays, acknowledged.
    expect(page.locator(f'li[data-alert-id="{aid}"] .status')).to_have_text("Kvitterat")

    for path in (
        f"/ui/patients/{fresh_seed.patients['P-DEMO0001']}",  # server-rendered SVG charts
        "/ui/patients",
        "/ui/gateways",
        "/ui/analytics",
        f"/ui/patients/{fresh_seed.patients['P-DEMO0004']}",  # another unit: the 404 page
        "/ui/patients/not-an-id",  # the 422 page
    ):
        page.goto(server + path)
        expect(page.locator("h1")).to_be_visible()
        assert _violations(page, console) == [], path
    expect(page.get_by_role("heading", name="Felaktig adress")).to_be_visible()
    expect(page.get_by_role("link", name="Tillbaka till larmkön")).to_be_visible()

    # The watch itself works: an inline style attribute is refused and reported.
    page.evaluate("document.body.insertAdjacentHTML('beforeend', '<p style=\"color: red\">x</p>')")
    page.wait_for_function("window.__csp.length > 0")
    assert any(v.startswith("style-src") for v in _violations(page, console))
    page.close()
