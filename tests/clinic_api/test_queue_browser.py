"""The live queue in Debian's Chromium: polling merges cards in place without disturbing the
nurse, the keyboard reaches everything with visible focus, and the layout at 1280×800 and
768 px wide (screenshots in test-artifacts/clinic_api/)."""

from __future__ import annotations

import datetime as dt
import re
import struct
import warnings
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.clinic_api.conftest import Seed
from tests.clinic_api.test_browser import SHOTS

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from playwright.sync_api import Browser, Page, expect

pytestmark = pytest.mark.browser
NEW_CARD_TIMEOUT_MS = 8000  # polls every second in these tests


def _login(page: Page, base: str, path: str) -> None:
    page.goto(base + "/")
    page.get_by_role("button", name="Sjuksköterska Anna Demo").click()
    expect(page).to_have_url(re.compile(r"/ui/alerts$"))
    page.goto(base + path)


def _alert(seed: Seed, rule: str) -> int:
    with psycopg.connect(seed.url) as conn:
        row = conn.execute("SELECT id FROM alert WHERE rule_id = %s", (rule,)).fetchone()
    assert row is not None
    return int(row[0])


def _sql(seed: Seed, sql: str, params: Any = ()) -> Any:
    with psycopg.connect(seed.url) as conn:
        row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


def test_poll_brings_new_card_and_keeps_typing_focus_and_open_evidence(
    browser: Browser, server: str, fresh_seed: Seed
) -> None:
    # bypass_csp: Playwright's polling predicates are evaluated as strings, which the pages'
    # CSP (no unsafe-eval) refuses; test_websec_browser.py checks the pages under their CSP.
    page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="sv-SE", bypass_csp=True)
    _login(page, server, "/ui/alerts?poll_s=1")
    page.evaluate("window.__sameDocument = true")  # gone after any reload
    sound = page.get_by_role("checkbox", name="Ljud för kritiska larm")
    expect(sound).to_be_visible()
    sound.check()
    hf1, h1, d1, a1 = (_alert(fresh_seed, r) for r in ("HF1", "H1", "D1", "A1"))

    # The nurse opens H1's evidence and starts a comment on HF1 (focus stays in the field).
    page.locator(f'li[data-alert-id="{h1}"] summary').click()
    box = page.locator(f"#c-{hf1}")
    box.click()
    box.press_sequentially("Ringer patienten kl 14")

    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(fresh_seed.url) as conn:
        row = conn.execute(
            """INSERT INTO alert (patient_id, rule_id, event_type, condition, severity, title, opened_at,
                                 shown_to_staff_at, last_fired_at, updated_at, evidence)
               VALUES (%s, 'C1', 'hypoxaemia', 'asthma', 'critical', 'Låg syremättnad', %s, %s, %s, %s, %s)
               RETURNING id""",
            (fresh_seed.patients["P-DEMO0003"], now, now, now, now, Jsonb({"rule": "C1"})),
        ).fetchone()
        assert row is not None
        new_id = int(row[0])
        # Meanwhile, elsewhere: HF1 and H1 change (the nurse works in them), D1 is
        # acknowledged by a colleague, A1 resolved.
        conn.execute("UPDATE alert SET severity = 'high', updated_at = now() WHERE id = %s", (hf1,))
        conn.execute("UPDATE alert SET fire_count = fire_count + 1, updated_at = now() WHERE id = %s", (h1,))
        conn.execute(
            "UPDATE alert SET status = 'acknowledged', acknowledged_at = now(), updated_at = now() WHERE id = %s",
            (d1,),
        )
        conn.execute("UPDATE alert SET status = 'resolved', resolved_at = now() WHERE id = %s", (a1,))

    new_card = page.locator(f'li[data-alert-id="{new_id}"]')
    expect(new_card).to_have_count(1, timeout=NEW_CARD_TIMEOUT_MS)
    # Critical first; announced politely; the opted-in tone played once.
    expect(page.locator("ol.queue > li").first).to_have_attribute("data-alert-id", str(new_id))
    expect(new_card.locator(".flag.new")).to_have_text("Nytt")
    expect(page.locator("#queue-live")).to_have_text("1 nytt larm, varav 1 kritiskt")
    expect(page.locator("#queue-live")).to_have_attribute("aria-live", "polite")
    expect(page.locator("#queue")).to_have_attribute("data-tones", "1")
    # D1 replaced (a colleague acknowledged it), A1 gone.
    expect(page.locator(f'li[data-alert-id="{d1}"] .status')).to_have_text("Kvitterat")
    expect(page.locator(f'li[data-alert-id="{a1}"]')).to_have_count(0)

    # The cards she works in are not replaced, only marked; her text and focus are there.
    hf1_card = page.locator(f'li[data-alert-id="{hf1}"]')
    expect(hf1_card.get_by_role("button", name="Uppdaterat – visa")).to_be_visible()
    expect(hf1_card.locator(".badge")).to_have_text("Medel")
    expect(box).to_have_value("Ringer patienten kl 14")
    expect(box).to_be_focused()
    h1_card = page.locator(f'li[data-alert-id="{h1}"]')
    expect(h1_card.locator("details")).to_have_attribute("open", "")
    expect(h1_card.get_by_role("button", name="Uppdaterat – visa")).to_be_visible()
    # Several polls later nothing has moved under her.
    polls = int(page.locator("#queue").get_attribute("data-polls") or 0)
    page.wait_for_function(f"Number(document.getElementById('queue').dataset.polls) >= {polls + 2}")
    expect(box).to_have_value("Ringer patienten kl 14")
    expect(box).to_be_focused()
    expect(page.locator("#queue-count")).to_have_text("4")
    assert page.evaluate("window.__sameDocument") is True  # never reloaded
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "queue-live-after-poll.png"), full_page=True)

    # She refreshes HF1 herself: the newer version, at its place in the order, focus on it.
    hf1_card.get_by_role("button", name="Uppdaterat – visa").click()
    expect(hf1_card.locator(".badge")).to_have_text("Hög")
    expect(page.locator(f"#t-{hf1}")).to_be_focused()
    expect(page.locator("ol.queue > li").nth(1)).to_have_attribute("data-alert-id", str(hf1))

    # The sound choice is remembered in this browser.
    page.reload()
    expect(page.get_by_role("checkbox", name="Ljud för kritiska larm")).to_be_checked()
    page.close()


def _focused(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(
        """() => {
          const el = document.activeElement;
          const label = el.labels && el.labels.length ? el.labels[0].textContent.trim() : "";
          const cs = getComputedStyle(el);
          return {
            name: el.getAttribute("aria-label") || label || el.textContent.trim(),
            tag: el.tagName.toLowerCase(),
            card: el.closest("li[data-alert-id]") ? el.closest("li[data-alert-id]").dataset.alertId : null,
            outline: cs.outlineStyle !== "none" && parseFloat(cs.outlineWidth) >= 2,
          };
        }"""
    )
    return result


def test_keyboard_only_walk_of_the_queue(browser: Browser, server: str, fresh_seed: Seed) -> None:
    # bypass_csp: Playwright's polling predicates are evaluated as strings, which the pages'
    # CSP (no unsafe-eval) refuses; test_websec_browser.py checks the pages under their CSP.
    page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="sv-SE", bypass_csp=True)
    _login(page, server, "/ui/alerts?poll_s=60")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Hoppa till innehållet")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#main")).to_be_focused()
    walk: list[dict[str, Any]] = []
    for _ in range(40):
        page.keyboard.press("Tab")
        walk.append(_focused(page))
    names = [w["name"] for w in walk]
    hf1 = str(_alert(fresh_seed, "HF1"))
    first_card = "Viktökning > 2 kg på 3 dygn, P-DEMO0001"
    expected = [
        "Öppna",
        "Kvitterade",
        "Vilande",
        "Väntar på ommätning",
        "Allvarlighetsgrad",
        "Vårdenhet",
        "Diagnos",
        "Mina",
        "Eskalerade till mig",
        "Visa",
        "Återställ filter",
        "Uppdatera",
        "Ljud för kritiska larm",
        "P-DEMO0001",
        "Underlag",
        f"Öppna larm: {first_card}",
        f"Kvittera larm: {first_card}",
        f"Skjut upp: {first_card}",
        f"Skjut upp larm: {first_card}",
        f"Avsluta larm (välj orsak): {first_card}",
        f"Kommentar: {first_card}",
        f"Kommentera larm: {first_card}",
    ]
    assert names[: len(expected)] == expected
    assert all(w["card"] == hf1 for w in walk[13 : len(expected)])
    assert walk[len(expected)]["card"] not in (None, hf1)  # on to the next card
    unfocused = [w for w in walk if not w["outline"]]
    assert unfocused == []  # every stop shows where the focus is

    # Act by keyboard alone: back to the comment field, type, Enter submits the comment.
    for _ in range(len(walk) - expected.index(f"Kommentar: {first_card}") - 1):
        page.keyboard.press("Shift+Tab")
    assert _focused(page)["name"] == f"Kommentar: {first_card}"
    page.keyboard.type("Kontaktad per telefon")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/ui/alerts\?done=commented$"))
    assert (
        _sql(
            fresh_seed,
            "SELECT comment FROM alert_event WHERE alert_id = %s AND event = 'commented'",
            (int(hf1),),
        )
        == "Kontaktad per telefon"
    )
    page.close()


def _png_size(path: Any) -> tuple[int, int]:
    with open(path, "rb") as fh:
        head = fh.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", head[16:24])
    return int(w), int(h)


@pytest.mark.parametrize("motion", ["reduce", "no-preference"])
def test_layout_screenshots_and_reduced_motion(browser: Browser, server: str, motion: str) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="sv-SE", reduced_motion=motion)  # type: ignore[arg-type]
    _login(page, server, "/ui/alerts?poll_s=60")
    expect(page.locator("ol.queue > li")).to_have_count(4)
    # A new card glows briefly, unless the nurse has asked for less motion.
    animation = page.evaluate(
        """() => { const li = document.querySelector('ol.queue > li'); li.classList.add('is-new');
                   return getComputedStyle(li).animationName; }"""
    )
    assert animation == ("none" if motion == "reduce" else "queue-new")
    page.evaluate("document.querySelector('ol.queue > li').classList.remove('is-new')")
    if motion == "reduce":
        page.close()
        return
    SHOTS.mkdir(parents=True, exist_ok=True)
    wide = SHOTS / "queue-1280x800.png"
    page.screenshot(path=str(wide))
    assert _png_size(wide) == (1280, 800)
    page.set_viewport_size({"width": 768, "height": 1024})
    assert page.evaluate("document.documentElement.scrollWidth") <= 768  # no sideways scrolling
    # Filters and the first card's actions are all on screen, not clipped.
    for name in ("Visa", "Uppdatera"):
        box = page.get_by_role("button" if name == "Visa" else "link", name=name, exact=True).bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= 768
    tablet = SHOTS / "queue-768.png"
    page.screenshot(path=str(tablet), full_page=True)
    assert _png_size(tablet)[0] == 768
    page.close()
