"""Patients of the staff member's care units: one patient, the overview list, observation
series and condition summaries. Callers write the audit row."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import numpy as np
import psycopg

from clinic_api.auth import Staff
from clinic_api.downsample import Buckets, bucket
from clinic_api.errors import NotFound
from clinic_api.queries._db import Row, _row, _rows
from clinic_api.queries.alerts import SEVERITY_ORDER
from clinic_api.queries.care_plans import care_plan_current
from device_profiles.vocabulary import COMPONENTS


def patient_for(conn: psycopg.Connection[Any], staff: Staff, patient_id: uuid.UUID) -> Row:
    """The patient if it belongs to one of the staff member's units; 404 otherwise (so the
    existence of other units' patients is not revealed)."""
    row = _row(
        conn,
        """SELECT p.id, p.pseudonym, p.display_name, p.birth_year, p.unit_id, p.active, p.created_at,
                  u.code AS unit_code, u.name AS unit_name
           FROM patient p JOIN care_unit u ON u.id = p.unit_id
           WHERE p.id = %s AND p.unit_id = ANY(%s)""",
        (patient_id, list(staff.unit_ids)),
    )
    if row is None:
        raise NotFound("patient")
    return row


# Adherence over today and the six days before (local days): distinct (kind, day) measured,
# out of what was due. Today counts only for the kinds already measured today, so a
# measurement not yet taken this morning is not a missed one (at 01:00 every patient
# would otherwise show 6/7). Days are counted in Europe/Stockholm time, DST included.
ADHERENCE_SQL = """
    LEFT JOIN LATERAL (
        SELECT CASE WHEN cardinality(k.kinds) = 0 THEN NULL ELSE
               least(100, round(100.0 * count(DISTINCT (o.kind, (o.measured_at AT TIME ZONE 'Europe/Stockholm')::date))
                     / (6 * cardinality(k.kinds) + count(DISTINCT o.kind) FILTER (WHERE o.measured_at >= d.today)),
                     1))::float8 END AS adherence_7d_pct
        FROM (SELECT coalesce(ARRAY(SELECT jsonb_object_keys(cp.schedule)), '{}') AS kinds) k
        CROSS JOIN (
            SELECT date_trunc('day', now() AT TIME ZONE 'Europe/Stockholm') AT TIME ZONE 'Europe/Stockholm' AS today,
                   (date_trunc('day', now() AT TIME ZONE 'Europe/Stockholm') - interval '6 days')
                       AT TIME ZONE 'Europe/Stockholm' AS since
        ) d
        LEFT JOIN observation o ON o.patient_id = p.id AND o.kind = ANY(k.kinds)
             AND o.measured_at >= d.since AND o.status <> 'rejected'
        GROUP BY k.kinds
    ) adh ON true
"""


def patients_overview(conn: psycopg.Connection[Any], staff: Staff, unit: uuid.UUID | None = None) -> list[Row]:
    params: dict[str, Any] = {"units": list(staff.unit_ids)}
    extra = ""
    if unit is not None:
        extra = "AND p.unit_id = %(unit)s"
        params["unit"] = unit
    return _rows(
        conn,
        f"""SELECT p.id, p.pseudonym, p.display_name, p.birth_year, p.unit_id, u.code AS unit_code,
                   coalesce(cp.conditions, '{{}}') AS conditions,
                   (SELECT count(*) FROM alert a WHERE a.patient_id = p.id AND a.status = 'open'
                      AND a.route = 'staff' AND a.shown_to_staff_at IS NOT NULL) AS open_alerts,
                   (SELECT a.severity FROM alert a WHERE a.patient_id = p.id AND a.status IN ('open', 'acknowledged')
                      AND a.route = 'staff' AND a.shown_to_staff_at IS NOT NULL
                     ORDER BY {SEVERITY_ORDER} DESC LIMIT 1) AS top_severity,
                   (SELECT max(o.measured_at) FROM observation o WHERE o.patient_id = p.id) AS last_measurement_at,
                   adh.adherence_7d_pct
            FROM patient p JOIN care_unit u ON u.id = p.unit_id
            LEFT JOIN care_plan_current cp ON cp.patient_id = p.id
            {ADHERENCE_SQL}
            WHERE p.unit_id = ANY(%(units)s) AND p.active {extra}
            ORDER BY p.pseudonym""",
        params,
    )


# The series travels as one bytea: per reading 8 bytes of timestamptz_send (int64 microseconds
# since 2000-01-01 UTC, big-endian) followed by 8 bytes of float8send (IEEE 754 big-endian),
# concatenated in time order by the server. numpy reads it in one call; 25,000 readings as
# Python row objects would dominate the request.
_PACKED = np.dtype([("t", ">i8"), ("v", ">f8")])
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z in Unix microseconds


def _packed_series(
    conn: psycopg.Connection[Any],
    patient_id: uuid.UUID,
    component: str,
    start: dt.datetime,
    end: dt.datetime | None = None,
) -> tuple[np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.float64]]]:
    """(epoch seconds, values) of the kept readings in [start, end) (end None: all since start),
    in time order. An index-only scan of observation_patient_idx (it INCLUDEs value and status);
    the server concatenates in scan order and numpy sorts, which is cheaper than the
    aggregate's own sort."""
    row = conn.execute(
        f"""SELECT string_agg(timestamptz_send(measured_at) || float8send(value), ''::bytea)
           FROM observation
           WHERE patient_id = %s AND component = %s AND measured_at >= %s {"AND measured_at < %s" if end else ""}
             AND status <> 'rejected' AND value IS NOT NULL""",
        (patient_id, component, start, end) if end else (patient_id, component, start),
        binary=True,
    ).fetchone()
    data = bytes(row[0]) if row and row[0] is not None else b""
    rows = np.frombuffer(data, dtype=_PACKED)
    rows = rows[np.argsort(rows["t"], kind="stable")]
    # Unix microseconds first (exact in int64), then one division: the correctly rounded
    # seconds, the same float as datetime.timestamp(). Dividing first and adding the epoch
    # after rounded twice and differed in the last bit for a quarter of all instants, which
    # moved a reading lying exactly on a bucket boundary into the neighbouring bucket.
    return (rows["t"] + _PG_EPOCH_US).astype(np.float64) / 1e6, rows["v"].astype(np.float64)


def series(
    conn: psycopg.Connection[Any],
    patient_id: uuid.UUID,
    component: str,
    *,
    start: dt.datetime,
    end: dt.datetime,
    max_points: int,
) -> Buckets:
    """One component's values in [start, end): the readings themselves when there are at most
    ``max_points``, otherwise ``max_points`` equal time buckets with min/mean/max/count.

    Bucketing is numpy (``downsample.bucket``) over the packed series read in one piece.
    """
    t_s, values = _packed_series(conn, patient_id, component, start, end)
    return bucket(t_s, values, start.timestamp(), end.timestamp(), max_points)


def values_since(
    conn: psycopg.Connection[Any], patient_id: uuid.UUID, components: list[str], since: dt.datetime
) -> dict[str, tuple[np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.float64]]]]:
    out: dict[str, tuple[np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.float64]]]] = {}
    for comp in components:
        out[comp] = _packed_series(conn, patient_id, comp, since)
    return out


def summaries(conn: psycopg.Connection[Any], patient_id: uuid.UUID, now: dt.datetime) -> dict[str, Any]:
    """Condition summaries (CLINICAL_RULES.md): CGM time in ranges over 14 days, 7-day home BP
    mean, weight trend against dry weight, PEF as % of personal best."""
    plan = care_plan_current(conn, patient_id) or {}
    since = now - dt.timedelta(days=14)
    data = values_since(conn, patient_id, ["glucose_interstitial", "systolic", "diastolic", "weight", "pef"], since)
    out: dict[str, Any] = {}
    _, g = data["glucose_interstitial"]
    if len(g):
        mean = float(g.mean())
        out["cgm_14d"] = {
            "n": len(g),
            "mean_mmol_l": round(mean, 2),
            "cv_pct": round(float(g.std(ddof=1)) / mean * 100, 1) if len(g) > 1 else None,
            "gmi_mmol_mol": round(12.71 + 4.70587 * mean, 1),
            "tir_3_9_10_pct": round(float(((g >= 3.9) & (g <= 10)).mean() * 100), 1),
            "tbr_lt_3_9_pct": round(float((g < 3.9).mean() * 100), 1),
            "tbr_lt_3_0_pct": round(float((g < 3.0).mean() * 100), 1),
            "tar_gt_10_pct": round(float((g > 10).mean() * 100), 1),
            "tar_gt_13_9_pct": round(float((g > 13.9).mean() * 100), 1),
            # 5-minute sensors: 288 readings a day expected.
            "coverage_pct": round(min(100.0, len(g) / (14 * 288) * 100), 1),
        }
    week = (now - dt.timedelta(days=7)).timestamp()
    ts, sys_ = data["systolic"]
    td, dia = data["diastolic"]
    sys7, dia7 = sys_[ts >= week], dia[td >= week]
    if len(sys7):
        out["bp_7d"] = {
            "n": len(sys7),
            "systolic_mean_mmhg": round(float(sys7.mean()), 1),
            "diastolic_mean_mmhg": round(float(dia7.mean()), 1) if len(dia7) else None,
            # ESH: at least 12 readings over the week for a valid home BP mean (H6).
            "sufficient": len(sys7) >= 12,
        }
    tw, w = data["weight"]
    if len(w):
        slope = float(np.polyfit((tw - tw[0]) / 86400.0, w, 1)[0]) if len(w) >= 3 and tw[-1] > tw[0] else None
        mean7 = w[tw >= week]
        dry = plan.get("dry_weight_kg")
        out["weight"] = {
            "latest_kg": round(float(w[-1]), 1),
            "trend_kg_per_day_14d": round(slope, 3) if slope is not None else None,
            "mean_7d_kg": round(float(mean7.mean()), 1) if len(mean7) else None,
            "dry_weight_kg": dry,
            "mean_7d_minus_dry_kg": round(float(mean7.mean()) - dry, 1) if len(mean7) and dry else None,
        }
    tp, pef = data["pef"]
    if len(pef):
        best = plan.get("personal_best_pef")
        pef7 = pef[tp >= week]
        out["pef"] = {
            "latest_l_min": round(float(pef[-1]), 0),
            "personal_best_l_min": best,
            "latest_pct_of_best": round(float(pef[-1]) / best * 100, 1) if best else None,
            "mean_7d_pct_of_best": round(float(pef7.mean()) / best * 100, 1) if best and len(pef7) else None,
        }
    return out


def observations_between(
    conn: psycopg.Connection[Any], patient_id: uuid.UUID, start: dt.datetime, end: dt.datetime, *, limit: int
) -> list[Row]:
    """Every stored observation in [start, end), rejected ones too (the FHIR export)."""
    return _rows(
        conn,
        """SELECT reading_id, component, measured_at, gateway_id, device_address, kind, value, unit, censored,
                  status, reject_reason, flags
           FROM observation WHERE patient_id = %s AND measured_at >= %s AND measured_at < %s
           ORDER BY measured_at, component LIMIT %s""",
        (patient_id, start, end, limit),
    )


def components_present(conn: psycopg.Connection[Any], patient_id: uuid.UUID, since: dt.datetime) -> list[str]:
    """The components with at least one kept reading since ``since``."""
    # One index probe per known component (observation_patient_idx leads with patient and
    # component) instead of reading every reading of the window: 90 days of CGM are ~26,000.
    rows = conn.execute(
        """SELECT c FROM unnest(%s::text[]) AS c
           WHERE EXISTS (SELECT 1 FROM observation o WHERE o.patient_id = %s AND o.component = c
                           AND o.measured_at >= %s AND o.status <> 'rejected')""",
        (list(COMPONENTS), patient_id, since),
    ).fetchall()
    return [r[0] for r in rows]


def rejected_readings(
    conn: psycopg.Connection[Any], patient_id: uuid.UUID, since: dt.datetime
) -> list[tuple[dt.datetime, str | None, list[str], list[float | None], list[str | None]]]:
    """The latest 20 readings kept but not used by the rules (another person, implausible):
    (measured_at, reject_reason, components, values, units)."""
    return conn.execute(
        """SELECT measured_at, reject_reason, array_agg(component ORDER BY component),
                  array_agg(value ORDER BY component), array_agg(unit ORDER BY component)
           FROM observation
           WHERE patient_id = %s AND measured_at >= %s AND status = 'rejected'
             AND component NOT IN ('mean_arterial', 'bmi', 'height')
           GROUP BY reading_id, measured_at, reject_reason ORDER BY measured_at DESC LIMIT 20""",
        (patient_id, since),
    ).fetchall()
