"""Sign-in in Debian's Chromium through the authorization-code flow against the dev issuer
of a live server: login-required page → Logga in → pick the demo nurse → the queue; the
session cookie's flags as the browser stores them; logout back to the login-required page."""

from __future__ import annotations

import re
import warnings

import pytest

from tests.clinic_api.test_browser import _shot

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from playwright.sync_api import Browser, expect

pytestmark = pytest.mark.browser


def test_sign_in_and_out_through_the_code_flow(browser: Browser, server: str) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="sv-SE")
    page = context.new_page()
    page.goto(server + "/login-required")
    expect(page.get_by_role("heading", name="Inloggning krävs")).to_be_visible()
    expect(page.get_by_text("Logga in med demons utvecklingsinloggning")).to_be_visible()
    _shot(page, "10-login-required")

    page.get_by_role("button", name="Logga in", exact=True).click()
    # At the issuer: the authorization request carries PKCE, state and nonce.
    expect(page).to_have_url(re.compile(r"/dev-issuer/authorize\?.*code_challenge_method=S256"))
    assert "nonce=" in page.url
    assert "state=" in page.url
    _shot(page, "11-dev-issuer-authorize")
    page.get_by_role("button", name="Sjuksköterska Anna Demo").click()

    expect(page).to_have_url(re.compile(r"/ui/alerts$"))
    expect(page.get_by_role("heading", name="Larmkö")).to_be_visible()
    expect(page.get_by_text("Sjuksköterska Anna Demo")).to_be_visible()
    cookies = {c["name"]: c for c in context.cookies()}
    session = cookies["egenmon_session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Lax"
    assert session["path"] == "/"
    assert session["secure"] is False  # the plain-http local demo only
    assert "egenmon_sign_in" not in cookies  # single use, cleared by the callback
    # Page scripts cannot read the session.
    assert "egenmon_session" not in page.evaluate("document.cookie")

    page.get_by_role("button", name="Logga ut").click()
    expect(page).to_have_url(re.compile(r"/login-required$"))
    expect(page.get_by_role("heading", name="Inloggning krävs")).to_be_visible()
    assert "egenmon_session" not in {c["name"] for c in context.cookies()}
    _shot(page, "12-logged-out")
    # Signed out: the queue asks to sign in again.
    page.goto(server + "/ui/alerts")
    expect(page).to_have_url(re.compile(r"/dev-issuer/authorize\?"))
    context.close()
