"""The patient page's charts in Debian's Chromium: text at least 12 CSS px on a 768 px
tablet, a care-plan override labelled "vårdplan", screenshots at 1280×800 and 768 px."""

from __future__ import annotations

import re
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.clinic_api.conftest import Seed, live_server
from tests.clinic_api.test_browser import SHOTS

with __import__("warnings").catch_warnings():
    __import__("warnings").simplefilter("ignore")
    from playwright.sync_api import Browser, Page, expect

pytestmark = pytest.mark.browser

# Rendered size of every text in the charts: font size in user units × the SVG's scale on screen.
SMALLEST_TEXT_PX = """() => {
  const sizes = [...document.querySelectorAll('svg.chart text, svg.tir-bar text')].map(t => {
    const m = t.getScreenCTM();
    return parseFloat(getComputedStyle(t).fontSize) * Math.hypot(m.a, m.b);
  });
  return {n: sizes.length, min: Math.min(...sizes)};
}"""


@pytest.fixture
def server(fresh_seed: Seed) -> Iterator[str]:
    with psycopg.connect(fresh_seed.url) as conn:
        # A new care-plan version for the CGM patient with D1 at 4.0 instead of 3.9.
        conn.execute(
            """INSERT INTO care_plan (patient_id, version, conditions, thresholds, schedule)
               SELECT patient_id, version + 1, conditions, %s, schedule FROM care_plan_current
               WHERE patient_id = %s""",
            (Jsonb({"D1": {"threshold_mmol_l": 4.0}}), fresh_seed.patients["P-DEMO0002"]),
        )
    with live_server(fresh_seed.url) as base:
        yield base


def _login(page: Page, base: str) -> None:
    page.goto(base + "/")
    page.get_by_role("button", name="Sjuksköterska Anna Demo").click()
    expect(page).to_have_url(re.compile(r"/ui/alerts$"))


def test_charts_readable_on_a_tablet_with_care_plan_label(browser: Browser, server: str, fresh_seed: Seed) -> None:
    cgm = fresh_seed.patients["P-DEMO0002"]
    bp = fresh_seed.patients["P-DEMO0001"]
    SHOTS.mkdir(parents=True, exist_ok=True)

    page = browser.new_page(viewport={"width": 768, "height": 1024}, locale="sv-SE", has_touch=True)
    _login(page, server)
    page.goto(f"{server}/ui/patients/{cgm}")
    glucose = page.locator("#chart-glucose_interstitial svg.chart")
    expect(glucose).to_be_visible()
    expect(glucose.locator("text.thl", has_text="D1 hypo nivå 1 4,0 (vårdplan)")).to_have_count(1)
    expect(page.locator("#chart-agp svg.agp")).to_be_visible()
    expect(page.locator(".tir-table tbody tr")).to_have_count(5)
    sizes = page.evaluate(SMALLEST_TEXT_PX)
    assert sizes["n"] > 20
    assert sizes["min"] >= 12.0, sizes
    assert page.evaluate("document.documentElement.scrollWidth") <= 768  # the page itself does not scroll sideways
    # The values table opens from the keyboard.
    summary = page.locator("#chart-glucose_interstitial details.chart-table summary")
    summary.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#chart-glucose_interstitial details.chart-table tbody tr").first).to_be_visible()
    page.screenshot(path=str(SHOTS / "charts-cgm-768.png"), full_page=True)
    page.goto(f"{server}/ui/patients/{bp}")
    expect(page.get_by_role("heading", name="Hemblodtryck, 7 dagar (ESH)")).to_be_visible()
    assert page.evaluate(SMALLEST_TEXT_PX)["min"] >= 12.0
    page.screenshot(path=str(SHOTS / "charts-bp-768.png"), full_page=True)
    page.close()

    wide = browser.new_page(viewport={"width": 1280, "height": 800}, locale="sv-SE")
    _login(wide, server)
    wide.goto(f"{server}/ui/patients/{cgm}")
    expect(wide.locator("#chart-glucose_interstitial svg.chart")).to_be_visible()
    assert wide.evaluate(SMALLEST_TEXT_PX)["min"] >= 12.0
    # Hovering a point shows its value and local time (the SVG <title>).
    tip = wide.locator("#chart-glucose_interstitial svg.chart circle.pt title").last.text_content() or ""
    assert re.fullmatch(r"\d{1,2} [a-z]{3} \d\d:\d\d: \d+,\d mmol/L", tip), tip
    wide.screenshot(path=str(SHOTS / "charts-cgm-1280x800.png"), full_page=True)
    wide.goto(f"{server}/ui/patients/{bp}")
    wide.screenshot(path=str(SHOTS / "charts-bp-1280x800.png"), full_page=True)
    wide.close()
    for name in ("charts-cgm-768", "charts-bp-768", "charts-cgm-1280x800", "charts-bp-1280x800"):
        assert (SHOTS / f"{name}.png").stat().st_size > 10_000
