"""The alert detail page in Debian's Chromium: a nurse comments and escalates to the demo
physician, the physician finds it, resolving needs a reason, and "Ångra" takes it back.
Screenshots at 1280×800 and 768 px wide go to test-artifacts/clinic_api/."""

from __future__ import annotations

import json
import re
import warnings

import pytest

from tests.clinic_api.conftest import Seed
from tests.clinic_api.test_browser import SHOTS
from tests.clinic_api.test_browser import _login_as_nurse as login_as_nurse

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from playwright.sync_api import Browser, Page, expect

pytestmark = pytest.mark.browser
REASON = "Upprepade värden under 3,5 trots extra måltid"


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def _timeline(page: Page) -> list[str]:
    return [t.strip() for t in page.locator("ol.timeline > li > strong").all_inner_texts()]


def test_escalate_to_physician_resolve_and_undo(browser: Browser, server: str, fresh_seed: Seed) -> None:
    aid = fresh_seed.alert_id("P-DEMO0002")  # D1, MON-NORD
    page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="sv-SE")
    login_as_nurse(page, server)
    page.goto(f"{server}/ui/alerts/{aid}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Hypoglykemi nivå 1 (< 3,9 mmol/L)")
    expect(page.locator(".rule-value")).to_have_text("3,1 mmol/L")
    expect(page.locator("table.readings tbody tr")).to_have_count(4)

    page.get_by_label("Kommentar", exact=True).fill("Ringt patienten, inget svar")
    page.get_by_role("button", name="Kommentera").click()
    expect(page.get_by_role("status")).to_have_text("Kommentaren är sparad.")

    page.get_by_label("Mottagare").select_option(label="Läkare Erik Demo")
    page.get_by_label("Anledning (krävs)").first.fill(REASON)
    page.get_by_role("button", name="Eskalera").click()
    expect(page.get_by_role("status")).to_have_text("Larmet är eskalerat.")
    assert _timeline(page) == ["Larm skapat", "Kommentar", "Eskalerat"]
    escalated = page.locator('ol.timeline > li[data-event="escalated"]')
    expect(escalated).to_contain_text(REASON)
    expect(escalated).to_contain_text("Till: Läkare Erik Demo")
    expect(escalated.locator(".by")).to_have_text("Sjuksköterska Anna Demo")
    expect(page.locator('ol.timeline > li[data-event="commented"]')).to_contain_text("Ringt patienten, inget svar")
    _shot(page, "10-alert-detail-1280")
    page.set_viewport_size({"width": 768, "height": 1024})
    assert page.evaluate("document.documentElement.scrollWidth") <= 768
    _shot(page, "11-alert-detail-768")

    # The physician logs in and finds the alert escalated to him.
    page.get_by_role("button", name="Logga ut").click()
    page.goto(server + "/")
    page.get_by_role("button", name="Läkare Erik Demo").click()
    expect(page).to_have_url(re.compile(r"/ui/alerts$"))
    page.goto(f"{server}/api/v1/alerts?escalated_to=me")
    mine = json.loads(page.locator("body").inner_text())
    assert [a["id"] for a in mine] == [aid]
    page.goto(f"{server}/ui/alerts/{aid}")
    expect(page.locator(".recipient")).to_contain_text("Läkare Erik Demo")

    # Without a reason the browser will not send the form, and the server refuses it too.
    page.get_by_role("button", name="Avsluta larmet").click()
    expect(page).to_have_url(f"{server}/ui/alerts/{aid}")
    expect(page.locator(".status")).to_have_text("Öppet")
    page.locator("#resolve-reason").evaluate("el => el.removeAttribute('required')")
    page.get_by_role("button", name="Avsluta larmet").click()
    expect(page.get_by_role("alert")).to_have_text("Ange en anledning.")
    expect(page.locator(".status")).to_have_text("Öppet")

    page.get_by_label("Anledning (krävs)").last.select_option(label="Kontakt med patienten")
    page.get_by_label("Kommentar (valfri)").fill("Åt druvsocker, mår bra")
    page.get_by_role("button", name="Avsluta larmet").click()
    expect(page.get_by_role("heading", name="Larmet avslutades")).to_be_visible()
    expect(page.locator(".status")).to_have_text("Avslutat")
    expect(page.locator('ol.timeline > li[data-event="resolved"]')).to_contain_text("Anledning: Kontakt med patienten")
    _shot(page, "12-alert-detail-resolved")
    page.get_by_role("button", name="Ångra").click()
    expect(page.get_by_role("status")).to_have_text("Avslutet är ångrat. Larmet är aktivt igen.")
    expect(page.locator(".status")).to_have_text("Öppet")
    expect(page.get_by_role("heading", name="Larmet avslutades")).to_have_count(0)
    assert _timeline(page)[-2:] == ["Avslutat", "Avslut ångrat"]
    page.close()
