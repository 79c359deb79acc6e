"""The pages in Debian's Chromium (Playwright, headless): log in as the demo nurse, work the
queue, open a patient and see the charts, acknowledge an alert. Screenshots of every page
go to test-artifacts/."""

from __future__ import annotations

import re
import warnings

import pytest

from tests.clinic_api.conftest import ROOT, Seed

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from playwright.sync_api import Browser, Page, expect

SHOTS = ROOT / "test-artifacts" / "clinic_api"

pytestmark = pytest.mark.browser


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _login_as_nurse(page: Page, base: str) -> None:
    page.goto(base + "/")
    expect(page).to_have_url(re.compile(r"/dev-issuer/authorize\?"))
    expect(page.locator("html")).to_have_attribute("lang", "sv")
    _shot(page, "01-login")
    page.get_by_role("button", name="Sjuksköterska Anna Demo").click()
    expect(page).to_have_url(re.compile(r"/ui/alerts$"))


def test_nurse_works_the_queue(browser: Browser, server: str, fresh_seed: Seed) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="sv-SE")
    _login_as_nurse(page, server)
    expect(page.get_by_role("heading", name="Larmkö")).to_be_visible()
    items = page.locator("ol.queue > li")
    # MON-NORD's open alerts: HF1, D1 (medium), A1, H1 (low); not MON-SYD's COPD alert.
    expect(items).to_have_count(4)
    expect(items.first.locator(".badge")).to_have_text("Medel")
    expect(items.first.get_by_role("heading", level=2)).to_have_text("Viktökning > 2 kg på 3 dygn")
    expect(items.first.locator(".latest")).to_contain_text("Vikt 85,2\u00a0kg")
    # Opened 5 h before the seed; a loaded machine may take a minute or more to get here.
    expect(items.first.locator(".age")).to_have_text(re.compile(r"^för 5 h( [1-9] min)? sedan$"))
    expect(page.get_by_text("SpO2 < 88 % i vila")).to_have_count(0)
    _shot(page, "02-alert-queue")

    # Open the heart-failure patient from the queue (the card's pseudonym) and see the charts.
    items.first.get_by_role("link", name="P-DEMO0001", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Tolvan Tolvansson")
    weight = page.locator("#chart-weight svg")
    expect(weight).to_be_visible()
    expect(weight.locator("polyline.line")).to_have_count(1)
    expect(weight.locator("line.th")).to_have_count(2)  # dry weight and dry weight + 2 kg
    expect(weight.locator("line.alert")).to_have_count(1)  # the HF1 alert marked
    # Heart failure + hypertension: H3 180, H1 135, HF5 100, and H5/HF5 at 90 merged into one line.
    expect(page.locator("#chart-systolic svg line.th")).to_have_count(4)
    expect(page.get_by_text("Torrvikt", exact=True).first).to_be_visible()
    _shot(page, "03-patient")

    # Acknowledge the diabetes alert from the queue: it stays in the default queue (open and
    # acknowledged) as Kvitterat, and leaves the open-only one.
    page.get_by_role("link", name="Larmkö").click()
    aid = fresh_seed.alert_id("P-DEMO0002")
    row = page.locator(f'li[data-alert-id="{aid}"]')
    expect(row).to_have_count(1)
    row.get_by_role("button", name=re.compile("^Kvittera larm")).click()
    expect(page).to_have_url(re.compile(r"/ui/alerts(\?.*)?$"))
    expect(page.get_by_role("status").filter(has_text="Larmet är kvitterat.")).to_have_count(1)
    expect(row.locator(".status")).to_have_text("Kvitterat")
    expect(row.get_by_role("button", name=re.compile("^Kvittera larm"))).to_have_count(0)
    _shot(page, "04-alert-queue-after-acknowledge")
    page.get_by_role("checkbox", name="Kvitterade").uncheck()
    page.get_by_role("button", name="Visa").click()
    # The filters travel as GET parameters (empty selects too, without a script to tidy them).
    expect(page).to_have_url(re.compile(r"/ui/alerts\?status=open&severity=&unit=&condition=$"))
    expect(page.locator(f'li[data-alert-id="{aid}"]')).to_have_count(0)
    expect(page.locator("ol.queue > li")).to_have_count(3)
    page.get_by_role("checkbox", name="Öppna").uncheck()
    page.get_by_role("checkbox", name="Kvitterade").check()
    page.get_by_role("button", name="Visa").click()
    expect(page.locator("ol.queue > li")).to_have_count(1)
    expect(page.locator(f'li[data-alert-id="{aid}"]')).to_contain_text("Kvitterat")
    _shot(page, "05-acknowledged")

    page.get_by_role("link", name="Gateways och mätutrustning").click()
    expect(page.get_by_role("heading", name="Gateways och mätutrustning")).to_be_visible()
    expect(page.locator("tbody tr")).to_have_count(3)
    expect(page.get_by_text("Offline")).to_have_count(1)
    _shot(page, "06-gateways")
    page.close()


def test_tablet_layout_and_keyboard(browser: Browser, server: str) -> None:
    page = browser.new_page(viewport={"width": 768, "height": 1024}, locale="sv-SE", has_touch=True)
    _login_as_nurse(page, server)
    # No horizontal scrolling of the page itself on a tablet.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 768
    # Every visible form control has an accessible name (label, aria-label or button text).
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, button')]
              .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                            && !(el.tagName === 'BUTTON' && el.textContent.trim()))
              .map(el => el.outerHTML)"""
    )
    assert unnamed == []
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Hoppa till innehållet")).to_be_focused()
    _shot(page, "07-alert-queue-tablet")
    page.get_by_role("link", name="Patienter").click()
    expect(page.locator("tbody tr")).to_have_count(3)
    _shot(page, "08-patients-tablet")
    page.close()
