"""Demo data for the local demo and the tests: care units, named demo staff (their dev-issuer
logins) and, optionally, patients with readings, alerts and gateway kits.

Personal identity numbers are Skatteverket test numbers only.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

UNITS = (("MON-NORD", "Monitoreringsfunktionen Nord"), ("MON-SYD", "Monitoreringsfunktionen Syd"))


@dataclass(frozen=True)
class DemoStaff:
    subject: str
    display_name: str
    roles: tuple[str, ...]
    units: tuple[str, ...]


STAFF = (
    DemoStaff("demo-nurse-anna", "Sjuksköterska Anna Demo", ("nurse",), ("MON-NORD",)),
    DemoStaff("demo-physician-erik", "Läkare Erik Demo", ("physician",), ("MON-NORD", "MON-SYD")),
    DemoStaff("demo-nurse-sara", "Sjuksköterska Sara Demo (Syd)", ("nurse",), ("MON-SYD",)),
    DemoStaff("demo-admin-maria", "Administratör Maria Demo", ("admin",), ("MON-NORD", "MON-SYD")),
    DemoStaff("demo-auditor-olle", "Granskare Olle Demo", ("auditor",), ()),
)

# (personnummer, name, unit, conditions, care-plan extras); personnummer from Skatteverket's
# test range (19121212-1212, birth numbers 980-999) only.
PATIENTS: tuple[tuple[str, str, str, list[str], dict[str, Any]], ...] = (
    ("19121212-1212", "Tolvan Tolvansson", "MON-NORD", ["heart_failure", "hypertension"], {"dry_weight_kg": 82.0}),
    ("19800101-9820", "Karin Testsson", "MON-NORD", ["diabetes_t1"], {}),
    ("19750513-9852", "Per Provsson", "MON-NORD", ["asthma"], {"personal_best_pef": 520.0}),
    ("19390310-9910", "Greta Exempel", "MON-SYD", ["copd"], {"spo2_target": "hypercapnic"}),
)


def seed_staff(conn: psycopg.Connection[Any]) -> dict[str, uuid.UUID]:
    """Create the demo units and staff (idempotent); returns unit ids by code."""
    units: dict[str, uuid.UUID] = {}
    for code, name in UNITS:
        row = conn.execute(
            """INSERT INTO care_unit (code, name) VALUES (%s, %s)
               ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name RETURNING id""",
            (code, name),
        ).fetchone()
        assert row is not None
        units[code] = row[0]
    for s in STAFF:
        row = conn.execute(
            """INSERT INTO staff (subject, display_name, roles) VALUES (%s, %s, %s)
               ON CONFLICT (subject) DO UPDATE SET display_name = EXCLUDED.display_name, roles = EXCLUDED.roles
               RETURNING id""",
            (s.subject, s.display_name, list(s.roles)),
        ).fetchone()
        assert row is not None
        for u in s.units:
            conn.execute(
                "INSERT INTO staff_unit (staff_id, unit_id) VALUES (%s, %s) ON CONFLICT DO NOTHING", (row[0], units[u])
            )
    return units


def _obs_rows(
    patient_id: uuid.UUID, gw: str, kind: str, at: dt.datetime, comps: dict[str, tuple[float, str]]
) -> list[tuple[Any, ...]]:
    rid = uuid.uuid5(uuid.NAMESPACE_URL, f"demo/{patient_id}/{kind}/{at.isoformat()}")
    return [(rid, c, at, patient_id, gw, "AA:BB:CC:00:00:01", kind, v, u, at) for c, (v, u) in comps.items()]


def seed_patients(
    conn: psycopg.Connection[Any],
    units: dict[str, uuid.UUID],
    *,
    days: int = 14,
    now: dt.datetime | None = None,
    cgm_every_min: int = 15,
) -> list[uuid.UUID]:
    """Demo patients with a care plan, a gateway kit with devices, readings and open alerts."""
    now = now or dt.datetime.now(dt.UTC)
    rnd = random.Random(7)
    ids: list[uuid.UUID] = []
    for i, (pnr, name, unit, conditions, extra) in enumerate(PATIENTS):
        row = conn.execute("SELECT patient_id FROM patient_identity WHERE personnummer = %s", (pnr,)).fetchone()
        if row is not None:
            ids.append(row[0])
            continue
        pid = conn.execute(
            "INSERT INTO patient (pseudonym, display_name, birth_year, unit_id) VALUES (%s, %s, %s, %s) RETURNING id",
            (f"P-DEMO{i + 1:04d}", name, int(pnr[:4]), units[unit]),
        ).fetchone()
        assert pid is not None
        patient_id: uuid.UUID = pid[0]
        ids.append(patient_id)
        conn.execute("INSERT INTO patient_identity (patient_id, personnummer) VALUES (%s, %s)", (patient_id, pnr))
        schedule = {"blood_pressure": {"per_day": 2}} if "hypertension" in conditions else {}
        if "heart_failure" in conditions:
            schedule["weight"] = {"per_day": 1}
        if "asthma" in conditions:
            schedule["spirometry"] = {"per_day": 2}
        if "copd" in conditions:
            schedule["spo2"] = {"per_day": 1}
        conn.execute(
            """INSERT INTO care_plan (patient_id, version, conditions, schedule, dry_weight_kg,
                                      personal_best_pef, spo2_target)
               VALUES (%s, 1, %s, %s, %s, %s, %s)""",
            (
                patient_id,
                conditions,
                Jsonb(schedule),
                extra.get("dry_weight_kg"),
                extra.get("personal_best_pef"),
                extra.get("spo2_target", "standard"),
            ),
        )
        gw = f"gw-demo-{i + 1:03d}"
        conn.execute(
            "INSERT INTO gateway (id, serial, online, last_status_at, last_status, enrolled_at)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (
                gw,
                f"SN-DEMO-{i + 1:04d}",
                i != 2,
                now - dt.timedelta(minutes=3 + 90 * (i == 2)),
                Jsonb({"outbox_depth": 0 if i != 2 else 17, "outbox_capacity": 10000, "version": "1.0.0"}),
                now - dt.timedelta(days=days + 1),
            ),
        )
        conn.execute(
            "INSERT INTO gateway_assignment (gateway_id, patient_id, valid) VALUES (%s, %s, tstzrange(%s, NULL))",
            (gw, patient_id, now - dt.timedelta(days=days + 1)),
        )
        rows: list[tuple[Any, ...]] = []
        devs: list[tuple[str, str, str, int]] = []
        for d in range(days, -1, -1):
            morning = (now - dt.timedelta(days=d)).replace(hour=6, minute=30, second=0, microsecond=0)
            if morning > now:
                continue
            if "heart_failure" in conditions:
                # A weight gain over the last 3 days (HF1 would fire).
                w = 82.5 + rnd.gauss(0, 0.25) + (max(0, 3 - d) * 0.9)
                rows += _obs_rows(patient_id, gw, "weight", morning, {"weight": (round(w, 1), "kg")})
            if "hypertension" in conditions:
                for h in (0, 12):
                    t = morning + dt.timedelta(hours=h)
                    if t <= now:
                        s = 142 + rnd.gauss(0, 7)
                        rows += _obs_rows(
                            patient_id,
                            gw,
                            "blood_pressure",
                            t,
                            {
                                "systolic": (round(s), "mm[Hg]"),
                                "diastolic": (round(s * 0.6), "mm[Hg]"),
                                "pulse": (round(72 + rnd.gauss(0, 5)), "/min"),
                            },
                        )
            if "asthma" in conditions:
                pef = 470 - max(0, 4 - d) * 40 + rnd.gauss(0, 12)
                rows += _obs_rows(patient_id, gw, "spirometry", morning, {"pef": (round(pef), "L/min")})
            if "copd" in conditions:
                rows += _obs_rows(
                    patient_id,
                    gw,
                    "spo2",
                    morning,
                    {
                        "spo2": (round(91 - max(0, 2 - d) * 2 + rnd.gauss(0, 0.8)), "%"),
                        "pulse": (round(84 + rnd.gauss(0, 4)), "/min"),
                    },
                )
        if "diabetes_t1" in conditions:
            t = now - dt.timedelta(days=days)
            step = dt.timedelta(minutes=cgm_every_min)
            while t <= now:
                hours = t.timestamp() / 3600
                g = 7.5 + 2.6 * math.sin(hours / 24 * 2 * math.pi) + rnd.gauss(0, 0.5)
                if now - t < dt.timedelta(hours=5) and now - t > dt.timedelta(hours=4):
                    g = 3.2 + rnd.gauss(0, 0.15)  # a recent hypo (D1)
                rows += _obs_rows(
                    patient_id, gw, "glucose_cgm", t, {"glucose_interstitial": (round(max(2.2, g), 1), "mmol/L")}
                )
                t += step
        kinds = sorted({r[6] for r in rows})
        for k_i, k in enumerate(kinds):
            devs.append(
                (
                    f"AA:BB:CC:00:0{i}:{k_i:02d}",
                    {
                        "weight": "A&D UC-352BLE",
                        "blood_pressure": "Omron M7 IT",
                        "spirometry": "Peak flow PF-100",
                        "spo2": "Nonin 3230",
                        "glucose_cgm": "Dexcom ONE+",
                    }.get(k, "okänd"),
                    k,
                    80 - 30 * k_i - 35 * (i == 3),
                )
            )
        for addr, model, kind, batt in devs:
            conn.execute(
                "INSERT INTO device (gateway_id, address, model, kind, battery_pct, last_seen_at)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (gw, addr, model, kind, max(5, batt), now - dt.timedelta(hours=2)),
            )
        with conn.cursor().copy(
            "COPY observation (reading_id, component, measured_at, patient_id, gateway_id, device_address,"
            " kind, value, unit, received_at) FROM STDIN"
        ) as cp:
            for r in rows:
                cp.write_row(r)
        _seed_alerts(conn, patient_id, conditions, now)
    return ids


def _seed_alerts(conn: psycopg.Connection[Any], patient_id: uuid.UUID, conditions: list[str], now: dt.datetime) -> None:
    alerts: list[tuple[str, str, str, str, dt.timedelta, dict[str, Any]]] = []
    if "heart_failure" in conditions:
        alerts.append(
            (
                "HF1",
                "heart_failure",
                "medium",
                "Viktökning > 2 kg på 3 dygn",
                dt.timedelta(hours=5),
                # The alerting engine's evidence shape: value, window start, thresholds with
                # their source, and the readings that triggered the rule.
                {
                    "value": 2.6,
                    "since": (now - dt.timedelta(days=3)).isoformat(),
                    "thresholds": {"gain_kg": {"value": 2.0, "source": "default"}},
                    "readings": [
                        {"series": "weight", "at": (now - dt.timedelta(days=d, hours=8)).isoformat(), "value": w}
                        for d, w in ((3, 82.6), (2, 83.4), (1, 84.3), (0, 85.2))
                    ],
                },
            )
        )
    if "diabetes_t1" in conditions:
        alerts.append(
            (
                "D1",
                "diabetes_t1",
                "medium",
                "Hypoglykemi nivå 1 (< 3,9 mmol/L)",
                dt.timedelta(hours=4),
                {"min_mmol_l": 3.1, "duration_min": 60, "threshold": 3.9, "threshold_source": "default"},
            )
        )
    if "asthma" in conditions:
        alerts.append(
            (
                "A1",
                "asthma",
                "low",
                "PEF under 80 % av personbästa (gul zon)",
                dt.timedelta(hours=20),
                {"pef_l_min": 380, "pct_of_best": 73, "threshold_pct": 80, "threshold_source": "care_plan"},
            )
        )
    if "copd" in conditions:
        alerts.append(
            (
                "C1",
                "copd",
                "high",
                "SpO2 < 88 % i vila",
                dt.timedelta(hours=2),
                {"spo2_pct": 87, "threshold": 88, "threshold_source": "default"},
            )
        )
    if "hypertension" in conditions:
        alerts.append(
            (
                "H1",
                "hypertension",
                "low",
                "Hemblodtryck medel ≥ 135/85 senaste 7 dygn",
                dt.timedelta(days=1, hours=3),
                {"systolic_mean": 142, "diastolic_mean": 85, "n": 14, "threshold_source": "default"},
            )
        )
    for rule, cond, sev, title, age, legacy in alerts:
        ev = {**legacy, **_engine_evidence(rule, sev, now - age, legacy)}
        row = conn.execute(
            """INSERT INTO alert (patient_id, rule_id, event_type, condition, severity, title, opened_at,
                                 shown_to_staff_at, last_fired_at, evidence, updated_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
            (
                patient_id,
                rule,
                rule,
                cond,
                sev,
                title,
                now - age,
                now - age,
                now - age,
                Jsonb({"rule_id": rule, **ev}),
                now - age,
            ),
        ).fetchone()
        assert row is not None
        conn.execute("INSERT INTO alert_event (alert_id, event, at) VALUES (%s, 'opened', %s)", (row[0], now - age))


# The alerting engine's per-rule evidence for the demo alerts that were written before it
# (value, thresholds with their source, the readings), so the detail page shows a real "Varför".
_DEMO_RULE_EVIDENCE: dict[str, tuple[float, dict[str, tuple[float, str]], str, tuple[float, ...]]] = {
    "D1": (
        3.1,
        {"threshold_mmol_l": (3.9, "default"), "min_duration_min": (15, "default")},
        "glucose_cgm.glucose_interstitial",
        (3.8, 3.5, 3.3, 3.1),
    ),
    "A1": (73.0, {"below_pct": (80, "care_plan"), "band_floor_pct": (60, "default")}, "spirometry.pef", (380.0,)),
    "C1": (87.0, {"high_below_pct": (88, "default"), "critical_below_pct": (85, "default")}, "spo2.spo2", (88.0, 87.0)),
    "H1": (
        142.0,
        {"systolic_mmhg": (135, "default"), "diastolic_mmhg": (85, "default"), "min_readings": (12, "default")},
        "blood_pressure.systolic",
        (146.0, 139.0, 141.0),
    ),
}


def _engine_evidence(rule: str, severity: str, at: dt.datetime, ev: dict[str, Any]) -> dict[str, Any]:
    """The leading rule's evidence at the top level plus ``rules``, as alerting/events.py writes it."""
    if "value" in ev:  # already in the engine's shape (HF1)
        one = {"rule": rule, "severity": severity, "at": at.isoformat(), **ev}
    else:
        value, thresholds, series, readings = _DEMO_RULE_EVIDENCE[rule]
        step = dt.timedelta(minutes=15)
        one = {
            "rule": rule,
            "severity": severity,
            "at": at.isoformat(),
            "since": (at - step * (len(readings) - 1)).isoformat(),
            "value": value,
            "thresholds": {k: {"value": v, "source": src} for k, (v, src) in thresholds.items()},
            "readings": [
                {"series": series, "at": (at - step * (len(readings) - 1 - k)).isoformat(), "value": v}
                for k, v in enumerate(readings)
            ],
        }
    return {**one, "rules": [one]}


def seed_demo(database_url: str, *, with_patients: bool = True) -> dict[str, uuid.UUID]:
    with psycopg.connect(database_url) as conn:
        units = seed_staff(conn)
        if with_patients:
            seed_patients(conn, units)
    return units
