"""The one label table: Swedish words, units and formats the pages show."""

from __future__ import annotations

import datetime as dt

from clinic_api import labels
from device_profiles.vocabulary import EventType, ResolutionReason


def test_every_event_type_and_resolution_reason_has_a_swedish_label() -> None:
    assert set(labels.EVENT_TYPE) == {e.value for e in EventType}
    assert set(labels.RESOLUTION_REASON) == {r.value for r in ResolutionReason}
    assert labels.label(labels.STATUS, "awaiting_confirmation") == "Väntar på ommätning"
    assert labels.label(labels.SEVERITY, "no such code") == "no such code"  # shown, never hidden


def test_units_read_as_a_clinician_writes_them() -> None:
    assert labels.unit("mm[Hg]") == "mmHg"
    assert labels.unit("Cel") == "°C"
    assert labels.unit("mmol/L") == "mmol/L"


def test_swedish_numbers_and_local_time() -> None:
    assert labels.number(3.95, 1) == "4,0"  # half up, not banker's rounding
    assert labels.number(1234.5) == "1\u00a0234,5"
    assert labels.number(None) == "–"
    assert labels.number(float("nan")) == "–"
    assert labels.percent(0.754) == "75 %"
    winter = dt.datetime(2026, 12, 3, 13, 5, tzinfo=dt.UTC)
    summer = dt.datetime(2026, 7, 3, 13, 5, tzinfo=dt.UTC)
    assert labels.local_time(winter) == "3 dec 2026 14:05"
    assert labels.local_time(summer, with_date=False) == "15:05"  # CEST
    assert labels.local_time(winter.isoformat()) == "3 dec 2026 14:05"
