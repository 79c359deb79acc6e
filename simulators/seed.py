"""Seeding a database with a cohort, so ingest can attribute the simulated readings.

Writes care units, patients (with their Skatteverket test personal identity numbers in
``patient_identity``), version-1 care plans, gateways, time-bounded gateway assignments and
devices, using the tables of ``schema/migrations/versions/0001_initial.py``. Seeding is
idempotent: running it twice with the same cohort changes nothing.

No staff: the demo logins are the clinic's (``python -m clinic_api seed-demo
--no-with-patients``, clinic_api/demo_seed.py), one set for the whole platform; its care
units are the cohort's (``CARE_UNITS``), so those logins see these patients.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import psycopg
from psycopg.types.json import Jsonb

from simulators.cohort import CARE_UNITS, Cohort

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SeedResult:
    units: int
    patients: int
    gateways: int
    devices: int


def seed_database(database_url: str, cohort: Cohort) -> SeedResult:
    """Insert the cohort's relational rows in one transaction."""
    cfg = cohort.config
    # Assignments start a day before the simulated history, so backfilled readings match.
    valid_from = cfg.start - timedelta(days=1)
    with psycopg.connect(database_url) as conn, conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO care_unit (code, name) VALUES (%s, %s) ON CONFLICT (code) DO NOTHING",
            list(CARE_UNITS),
        )
        unit_ids: dict[str, object] = dict(
            conn.execute(
                "SELECT code, id FROM care_unit WHERE code = ANY(%s)", ([c for c, _ in CARE_UNITS],)
            ).fetchall()
        )
        patients = cohort.patients
        cur.executemany(
            "INSERT INTO patient (id, pseudonym, display_name, birth_year, unit_id) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (id) DO NOTHING",
            [(p.patient_id, p.pseudonym, p.display_name, p.birth_year, unit_ids[p.unit_code]) for p in patients],
        )
        cur.executemany(
            "INSERT INTO patient_identity (patient_id, personnummer) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            [(p.patient_id, p.personnummer) for p in patients],
        )
        plans = []
        for p in patients:
            plan = p.care_plan()
            plans.append(
                (
                    p.patient_id,
                    valid_from,
                    plan["conditions"],
                    Jsonb(plan["thresholds"]),
                    Jsonb(plan["schedule"]),
                    plan["dry_weight_kg"],
                    plan["personal_best_pef"],
                    plan["spo2_target"],
                )
            )
        cur.executemany(
            "INSERT INTO care_plan (patient_id, version, valid_from, conditions, thresholds, schedule,"
            " dry_weight_kg, personal_best_pef, spo2_target, notes)"
            " VALUES (%s, 1, %s, %s, %s, %s, %s, %s, %s, 'simulated cohort')"
            " ON CONFLICT (patient_id, version) DO NOTHING",
            plans,
        )
        cur.executemany(
            "INSERT INTO gateway (id, serial, enrolled_at) VALUES (%s, %s, %s) ON CONFLICT (id) DO NOTHING",
            [(p.gateway_id, f"SIMGW-{p.gateway_id}", valid_from) for p in patients],
        )
        cur.executemany(
            "INSERT INTO gateway_assignment (gateway_id, patient_id, valid)"
            " SELECT %s, %s, tstzrange(%s, NULL)"
            " WHERE NOT EXISTS (SELECT 1 FROM gateway_assignment WHERE gateway_id = %s AND patient_id = %s)",
            [(p.gateway_id, p.patient_id, valid_from, p.gateway_id, p.patient_id) for p in patients],
        )
        devices = [
            (p.gateway_id, d.address, d.model, d.serial, d.firmware, d.kind.value, valid_from)
            for p in patients
            for d in p.devices
        ]
        cur.executemany(
            "INSERT INTO device (gateway_id, address, model, serial, firmware, kind, first_seen_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (gateway_id, address) DO NOTHING",
            devices,
        )
    log.info("seeded patients=%d gateways=%d devices=%d", len(patients), len(patients), len(devices))
    return SeedResult(len(unit_ids), len(patients), len(patients), len(devices))
