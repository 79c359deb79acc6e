"""Each device type: a measurement on the virtual device arrives as a reading with the
right kind, values, units, timestamp and flags (gateway → real Mosquitto)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ingest.service import IngestService
from simulators.ble.devices import (
    BloodPressureCuff,
    CgmSensor,
    GlucoseMeter,
    PeakFlowMeter,
    PulseOximeter,
    Scale,
    Thermometer,
    VirtualDevice,
)
from simulators.ble.radio import VirtualRadio
from tests.gateway.helpers import Collector, running, settings_for, until
from tests.ingest.helpers import count, seed_patient

AT = datetime(2026, 11, 20, 7, 30, tzinfo=UTC)


def _bp(d: VirtualDevice) -> None:
    assert isinstance(d, BloodPressureCuff)
    d.measure(142, 91, 72, at=AT)


def _glucose(d: VirtualDevice) -> None:
    assert isinstance(d, GlucoseMeter)
    d.measure(126, at=AT)  # 126 mg/dL = 6.99 mmol/L


def _cgm(d: VirtualDevice) -> None:
    assert isinstance(d, CgmSensor)
    d.session_start = AT - timedelta(days=2)
    d.measure(90, at=AT)


def _scale(d: VirtualDevice) -> None:
    assert isinstance(d, Scale)
    d.measure(81.4, at=AT)


def _plx(d: VirtualDevice) -> None:
    assert isinstance(d, PulseOximeter)
    d.measure(94, 77, at=AT)


def _thermo(d: VirtualDevice) -> None:
    assert isinstance(d, Thermometer)
    d.measure(38.2, at=AT)


def _pef(d: VirtualDevice) -> None:
    assert isinstance(d, PeakFlowMeter)
    d.measure(436, 3.11, 5.0, at=AT)


CASES: list[tuple[Any, Any, str, dict[str, tuple[float, str]]]] = [
    (
        BloodPressureCuff,
        _bp,
        "blood_pressure",
        {"systolic": (142, "mm[Hg]"), "diastolic": (91, "mm[Hg]"), "pulse": (72, "/min")},
    ),
    (GlucoseMeter, _glucose, "glucose_capillary", {"glucose": (6.99, "mmol/L")}),
    (CgmSensor, _cgm, "glucose_cgm", {"glucose_interstitial": (5.0, "mmol/L")}),
    (Scale, _scale, "weight", {"weight": (81.4, "kg")}),
    (PulseOximeter, _plx, "spo2", {"spo2": (94, "%"), "pulse": (77, "/min")}),
    (Thermometer, _thermo, "temperature", {"temperature": (38.2, "Cel")}),
    (PeakFlowMeter, _pef, "spirometry", {"pef": (436, "L/min"), "fev1": (3.11, "L"), "fvc": (5.0, "L")}),
]


@pytest.mark.parametrize(("cls", "measure", "kind", "expected"), CASES, ids=[c[2] for c in CASES])
async def test_measurement_arrives_as_reading(
    radio: VirtualRadio,
    tmp_path: Path,
    mqtt_url: str,
    cls: Any,
    measure: Any,
    kind: str,
    expected: dict[str, tuple[float, str]],
) -> None:
    gw_id = f"gw-dev-{kind.replace('_', '-')}"
    collector = Collector(mqtt_url, [f"egenmon/v1/gw/{gw_id}/readings"])
    try:
        device = radio.add(cls.create())
        async with running(settings_for(tmp_path, mqtt_url, gw_id)) as gw:
            measure(device)
            await until(lambda: len(collector.readings()) >= 1, what="a reading")
            await until(lambda: gw.outbox.depth == 0, what="outbox drained")
        [reading] = collector.readings()
        assert reading["kind"] == kind
        for name, (value, unit) in expected.items():
            assert reading["values"][name]["unit"] == unit
            assert reading["values"][name]["value"] == pytest.approx(value, abs=0.06), name
        assert datetime.fromisoformat(reading["measured_at"]) == pytest.approx(AT, abs=timedelta(minutes=1))
        assert "device_clock_unset" not in reading["flags"]
        assert reading["device"]["address"] == device.address
        assert reading["raw"]
    finally:
        collector.close()


@pytest.mark.slow
async def test_every_device_type_lands_in_the_database(
    radio: VirtualRadio,
    tmp_path: Path,
    mqtt_url: str,
    db: psycopg.Connection[Any],
    ingest_worker: Callable[..., IngestService],
) -> None:
    """Virtual device → gateway → Mosquitto → ingest → PostgreSQL, one reading per type."""
    gw_id = "gw-e2e-all-1"
    seed = seed_patient(db, gateway_id=gw_id)
    ingest_worker()
    for cls, measure, _kind, _expected in CASES:
        measure(radio.add(cls.create()))
    async with running(settings_for(tmp_path, mqtt_url, gw_id)) as gw:
        await until(lambda: gw.outbox.depth == 0 and len(gw.health) == len(CASES), what="all devices read")

        def rows() -> int:
            return count(db, "SELECT count(DISTINCT reading_id) FROM observation WHERE gateway_id = %s", gw_id)

        await until(lambda: rows() >= len(CASES), what="rows in the database")
    got = {
        (kind, comp): (value, unit, measured_at, patient)
        for kind, comp, value, unit, measured_at, patient in db.execute(
            "SELECT kind, component, value, unit, measured_at, patient_id FROM observation WHERE gateway_id = %s",
            (gw_id,),
        )
    }
    for _cls, _measure, kind, expected in CASES:
        for comp, (value, unit) in expected.items():
            v, u, at, patient = got[(kind, comp)]
            assert u == unit
            assert v == pytest.approx(value, abs=0.06), (kind, comp)
            assert at == pytest.approx(AT, abs=timedelta(minutes=1))
            assert patient == seed.patient_id
