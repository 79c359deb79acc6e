"""The kiosk page in Debian's Chromium (Playwright, headless): Swedish text, the current
message, values marked against thresholds, and every text at least 7:1 against its
background (WCAG AAA). Screenshots go to test-artifacts/gateway/."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from device_profiles.messages import DisplayLimit, FeedbackMessage
from gateway.outputs.screen import KioskData, LastValue, ScreenOutput, Slot

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from playwright.sync_api import Browser, expect

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "gateway"

pytestmark = pytest.mark.browser

# Contrast of each element's own text against the first opaque background up its ancestors.
CONTRAST_JS = """
() => {
  const rgb = s => s.match(/[\\d.]+/g).map(Number);
  const lin = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  const lum = ([r, g, b]) => [r, g, b].map(lin)
      .reduce((a, v, i) => a + v * [0.2126, 0.7152, 0.0722][i], 0);
  const bg = el => { for (; el; el = el.parentElement) { const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length < 4 || c[3] > 0) return c.slice(0, 3); } return [255, 255, 255]; };
  const out = [];
  for (const el of document.body.querySelectorAll('*')) {
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;
    const a = lum(rgb(getComputedStyle(el).color)), b = lum(bg(el));
    out.push({text: el.textContent.trim().slice(0, 40), ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)});
  }
  return out;
}
"""


def test_kiosk_page_in_chromium(browser: Browser) -> None:
    now = datetime.now(UTC)
    data = KioskData(
        now=now,
        slots=[
            Slot("blood_pressure", now - timedelta(hours=3), "done"),
            Slot("weight", now - timedelta(hours=1), "due"),
            Slot("blood_pressure", now + timedelta(hours=6), "later"),
        ],
        last=[
            LastValue(
                "blood_pressure", now - timedelta(hours=3), {"systolic": (142, "mm[Hg]"), "diastolic": (88, "mm[Hg]")}
            ),
            LastValue("spo2", now - timedelta(hours=2), {"spo2": (86, "%")}),
            LastValue("weight", now - timedelta(days=1), {"weight": (85.2, "kg")}),
        ],
        limits=[
            DisplayLimit(component="blood_pressure.systolic", level="yellow", op="ge", value=135, unit="mm[Hg]"),
            DisplayLimit(component="blood_pressure.systolic", level="red", op="ge", value=180, unit="mm[Hg]"),
            DisplayLimit(component="spo2.spo2", level="red", op="lt", value=88, unit="%"),
            DisplayLimit(component="weight.weight", level="red", op="gt", value=120, unit="kg"),
        ],
    )
    msg = FeedbackMessage.model_validate(
        {
            "id": "m-1",
            "level": "contact_care",
            "message_sv": "Ring din vårdcentral eller mottagning i dag.",
            "created_at": now,
            "expires_at": now + timedelta(hours=1),
        }
    )
    screen = ScreenOutput(lambda: data, port=0)
    try:
        page = browser.new_page(viewport={"width": 1024, "height": 768}, locale="sv-SE")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.goto(screen.url)
        expect(page.locator("html")).to_have_attribute("lang", "sv")
        expect(page.get_by_role("heading", name="Dagens mätningar")).to_be_visible()
        expect(page.locator(".message")).to_have_count(0)
        page.screenshot(path=str(SHOTS / "kiosk-no-message.png"), full_page=True)
        screen.show(msg)
        page.reload()
        expect(page.get_by_role("status")).to_contain_text("Ring din vårdcentral eller mottagning i dag.")
        expect(page.get_by_role("status")).to_contain_text("Kontakta vården")
        last = page.locator("ul.last > li")
        expect(last.nth(0)).to_contain_text("Blodtryck: 142/88 mmHg")
        expect(last.nth(0).locator(".badge")).to_have_text("Nära gränsen")
        expect(last.nth(1)).to_contain_text("Syremättnad: 86\u00a0%")
        expect(last.nth(1).locator(".badge")).to_have_text("Utanför gränserna")
        expect(last.nth(2).locator(".badge")).to_have_text("Inom gränserna")
        today = page.locator("ul.today > li")
        expect(today).to_have_count(3)
        expect(today.nth(0).locator(".badge")).to_have_text("Klar")
        expect(today.nth(1).locator(".badge")).to_have_text("Inte gjord ännu")
        # Large type for old eyes: body text at least 24 CSS px.
        size = page.evaluate("() => parseFloat(getComputedStyle(document.body).fontSize)")
        assert size >= 24
        ratios = page.evaluate(CONTRAST_JS)
        assert len(ratios) >= 10
        low = [r for r in ratios if r["ratio"] < 7]
        assert low == [], low
        page.screenshot(path=str(SHOTS / "kiosk-message.png"), full_page=True)
        screen.clear()
        page.reload()
        expect(page.locator(".message")).to_have_count(0)
    finally:
        screen.close()
