"""Columnar loading: care plans into a Cohort, observations into sorted numpy series.

Two paths with the same result:

* ``load_dataset`` (a few patients: notifications, the CLI): one query per kind group
  over its window (CGM: 14 days plus a margin; all spot kinds: the 29-day day grid),
  walking the patient index.
* ``load_region`` (the sweep): one binary COPY per block of patients over the whole
  window, every kind at once with each kind group's own window, straight into numpy;
  rows are grouped by series and patient with two radix passes, and the sweep evaluates
  the region in chunks sliced from the arrays. PostgreSQL's heap holds the window
  interleaved in time, so reading it once per chunk cost one scan of the whole window
  per chunk (quadratic in the region); now it is one scan per block.

Rejected observations are never loaded, so no rule can fire on them; censored sensor
values become -inf (LOW) / +inf (HIGH).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg

from alerting.cohort import Cohort
from alerting.rules import GRID_DAYS, REGISTRY
from alerting.series import SEC_PER_DAY, Dataset, Series

log = logging.getLogger(__name__)

# (kinds, days of history). CGM is dense, so it gets only what its rules read.
KIND_GROUPS: tuple[tuple[tuple[str, ...], float], ...] = (
    (("glucose_cgm",), 14.5),
    (
        (
            "blood_pressure",
            "glucose_capillary",
            "weight",
            "spo2",
            "temperature",
            "spirometry",
            "symptoms",
        ),
        GRID_DAYS + 1.0,
    ),
)

COHORT_SQL = """
SELECT p.id::text, p.pseudonym, cp.conditions, cp.thresholds, cp.schedule,
       cp.dry_weight_kg, cp.personal_best_pef, cp.spo2_target,
       extract(year FROM now() AT TIME ZONE 'Europe/Stockholm')::int - p.birth_year,
       (SELECT extract(epoch FROM min(c.valid_from))::float8 FROM care_plan c WHERE c.patient_id = p.id)
FROM patient p JOIN care_plan_current cp ON cp.patient_id = p.id
WHERE p.active {where}
"""


def schedule_per_day(schedule: Any) -> dict[str, float]:
    """Expected readings per day per kind from the care plan's schedule.

    Accepts {"weight": 1} or {"weight": {"per_day": 1}}; anything else counts as 1/day
    when present, so an unfamiliar schedule shape still enables the no-data rules.
    """
    out: dict[str, float] = {}
    if not isinstance(schedule, dict):
        return out
    for kind, spec in schedule.items():
        if isinstance(spec, int | float) and not isinstance(spec, bool):
            out[kind] = float(spec)
        elif isinstance(spec, dict) and isinstance(spec.get("per_day"), int | float):
            out[kind] = float(spec["per_day"])
        elif spec:
            out[kind] = 1.0
    return out


def cohort_rows(conn: psycopg.Connection[Any], patient_ids: Sequence[str] | None = None) -> list[Any]:
    """``COHORT_SQL``'s rows for ``patient_ids`` (None: every active patient)."""
    if patient_ids is None:
        return conn.execute(COHORT_SQL.format(where="")).fetchall()
    return conn.execute(COHORT_SQL.format(where="AND p.id = ANY(%s::uuid[])"), (list(patient_ids),)).fetchall()


def load_cohort(conn: psycopg.Connection[Any], patient_ids: Sequence[str] | None = None) -> Cohort:
    return cohort_from_rows(cohort_rows(conn, patient_ids))


def cohort_from_rows(rows: Sequence[Sequence[Any]]) -> Cohort:
    """A Cohort from rows in ``COHORT_SQL``'s column order (id, pseudonym, conditions,
    thresholds, schedule, dry weight, personal best PEF, COPD phenotype, age, monitored since)."""
    # Sorted in Python, not by the server's collation: the loader maps ids with searchsorted.
    rows = sorted(rows, key=lambda r: str(r[0]))
    return Cohort.build(
        [r[0] for r in rows],
        [r[2] or [] for r in rows],
        dry_weight_kg=[r[5] for r in rows],
        personal_best_pef=[r[6] for r in rows],
        hypercapnic=[r[7] == "hypercapnic" for r in rows],
        thresholds=[r[3] if isinstance(r[3], dict) else {} for r in rows],
        schedule=[schedule_per_day(r[4]) for r in rows],
        pseudonyms=[r[1] for r in rows],
        age_years=[r[8] for r in rows],
        monitored_since=[r[9] for r in rows],
    )


def _known_keys() -> list[str]:
    """The series the rules read, in a fixed order: their index is the key column of the COPY."""
    return sorted({k for r in REGISTRY.values() for k in r.reads})


KNOWN_KEYS = _known_keys()

# Patients arrive as an array joined WITH ORDINALITY, so the planner walks the
# (patient_id, component, measured_at) index patient by patient instead of scanning every
# chunk for ``patient_id = ANY(...)`` and sorting the lot; the ordinality is the cohort index.
_ROWS_SQL = """
    SELECT (u.i - 1)::int4, coalesce(array_position(%(keys)s::text[], o.kind || '.' || o.component), 0)::int4,
           extract(epoch FROM o.measured_at)::float8,
           CASE o.censored WHEN 'low' THEN '-Infinity'::float8
                           WHEN 'high' THEN 'Infinity'::float8
                           ELSE coalesce(o.value, 'NaN'::float8) END
    FROM unnest(%(ids)s::uuid[]) WITH ORDINALITY AS u(id, i)
    JOIN observation o ON o.patient_id = u.id
    WHERE o.kind = ANY(%(kinds)s) AND o.status <> 'rejected'
      AND o.measured_at > to_timestamp(%(lo)s) AND o.measured_at <= to_timestamp(%(hi)s)
"""

# PostgreSQL's binary COPY tuple of the four columns above: field count, then each field's
# length and big-endian value. Every field is fixed width and never NULL, so the whole
# stream is an array of these records after the 19-byte header.
_COPY_ROW = np.dtype(
    [
        ("nf", ">i2"),
        ("l1", ">i4"),
        ("i", ">i4"),
        ("l2", ">i4"),
        ("k", ">i4"),
        ("l3", ">i4"),
        ("t", ">f8"),
        ("l4", ">i4"),
        ("v", ">f8"),
    ]
)
_COPY_HEADER = 19
LOAD_WORK_MEM = "256MB"


def load_dataset(conn: psycopg.Connection[Any], cohort: Cohort, now: float, *, method: str = "copy") -> Dataset:
    """Every series the rules read, for the cohort's patients, as of ``now`` (epoch seconds).

    ``method``: "copy" (binary COPY straight into numpy) or "arrays" (one array_agg row per
    series and patient); both walk the patient index and give the same dataset.
    """
    if cohort.n == 0:
        return {}
    parts: dict[str, list[tuple[Any, Any, Any]]] = {}
    for kinds, days in KIND_GROUPS:
        params = {
            "keys": KNOWN_KEYS,
            "ids": cohort.patient_ids,
            "kinds": list(kinds),
            "lo": now - days * SEC_PER_DAY,
            "hi": now,
        }
        if method == "copy":
            _fetch_copy(conn, params, parts)
        else:
            _fetch_arrays(conn, params, parts, "")
    data = {
        k: Series.build(
            np.concatenate([p for p, _, _ in v]),
            np.concatenate([t for _, t, _ in v]),
            np.concatenate([x for _, _, x in v]),
        )
        for k, v in parts.items()
    }
    log.debug("loaded %d series, %d values for %d patients", len(data), sum(len(s) for s in data.values()), cohort.n)
    return data


def _fetch_copy(
    conn: psycopg.Connection[Any], params: dict[str, Any], parts: dict[str, list[tuple[Any, Any, Any]]]
) -> None:
    buf = bytearray()
    with conn.transaction():
        # The join hashes the chunk's patients: memory for that in one batch, not spilled to
        # temp files; JIT compilation costs more than it saves on this short plan.
        conn.execute(f"SET LOCAL work_mem = '{LOAD_WORK_MEM}'")
        conn.execute("SET LOCAL jit = off")
        with conn.cursor().copy(f"COPY ({_ROWS_SQL}) TO STDOUT (FORMAT BINARY)", params) as cp:
            for block in cp:
                buf += block
    n = (len(buf) - _COPY_HEADER - 2) // _COPY_ROW.itemsize
    if n <= 0:
        return
    rec = np.frombuffer(buf, dtype=_COPY_ROW, count=n, offset=_COPY_HEADER)
    key = rec["k"]
    pat, t, v = rec["i"].astype(np.int64), rec["t"].astype(np.float64), rec["v"].astype(np.float64)
    # Group by key with one stable sort instead of a mask per key.
    order = np.argsort(key, kind="stable")
    key, pat, t, v = key[order], pat[order], t[order], v[order]
    bounds = np.flatnonzero(np.diff(key)) + 1
    for a, b in zip(np.r_[0, bounds], np.r_[bounds, len(key)], strict=True):
        k = int(key[a])
        if k == 0:
            continue
        parts.setdefault(KNOWN_KEYS[k - 1], []).append((pat[a:b], t[a:b], v[a:b]))
    if key[0] == 0:
        # Components no rule reads (triage still sees that the series exists): by name.
        _fetch_arrays(conn, params, parts, "AND NOT (o.kind || '.' || o.component = ANY(%(keys)s::text[]))")


def _fetch_arrays(
    conn: psycopg.Connection[Any], params: dict[str, Any], parts: dict[str, list[tuple[Any, Any, Any]]], extra: str
) -> None:
    # One row per (series, patient) with the readings as float8 arrays: psycopg's binary
    # loader turns those into lists in C, far faster than one Python tuple per reading.
    cur = conn.cursor(binary=True)
    cur.execute(
        f"""
        SELECT o.kind || '.' || o.component, (u.i - 1)::int4,
               array_agg(extract(epoch FROM o.measured_at)::float8 ORDER BY o.measured_at),
               array_agg(CASE o.censored WHEN 'low' THEN '-Infinity'::float8
                                         WHEN 'high' THEN 'Infinity'::float8
                                         ELSE coalesce(o.value, 'NaN'::float8) END ORDER BY o.measured_at)
        FROM unnest(%(ids)s::uuid[]) WITH ORDINALITY AS u(id, i)
        JOIN observation o ON o.patient_id = u.id
        WHERE o.kind = ANY(%(kinds)s) AND o.status <> 'rejected'
          AND o.measured_at > to_timestamp(%(lo)s) AND o.measured_at <= to_timestamp(%(hi)s) {extra}
        GROUP BY 1, 2
        """,
        params,
    )
    for key, i, times, values in cur:
        t = np.asarray(times, dtype=np.float64)
        parts.setdefault(str(key), []).append(
            (np.full(len(t), i, dtype=np.int64), t, np.asarray(values, dtype=np.float64))
        )


# The region's rows: every kind at once, each kind group's own window (``window_sql``),
# measured_at as the binary timestamptz (microseconds since 2000) to spare the server the
# conversion to epoch seconds.
_REGION_SQL = """
    SELECT (u.i - 1)::int4, coalesce(array_position(%(keys)s::text[], o.kind || '.' || o.component), 0)::int4,
           o.measured_at,
           CASE o.censored WHEN 'low' THEN '-Infinity'::float8
                           WHEN 'high' THEN 'Infinity'::float8
                           ELSE coalesce(o.value, 'NaN'::float8) END
    FROM unnest(%(ids)s::uuid[]) WITH ORDINALITY AS u(id, i)
    JOIN observation o ON o.patient_id = u.id
    WHERE o.status <> 'rejected' AND o.measured_at > to_timestamp(%(lo)s) AND o.measured_at <= to_timestamp(%(hi)s)
      AND ({windows})
"""


def copy_row(patient: tuple[str, str]) -> np.dtype:
    """One binary COPY row of (patient, key, time, value): the field count, then each field's
    length and big-endian value; ``patient`` is the first field's (name, dtype)."""
    return np.dtype(
        [
            ("nf", ">i2"),
            ("l1", ">i4"),
            patient,
            ("l2", ">i4"),
            ("k", ">i4"),
            ("l3", ">i4"),
            ("t", ">i8"),
            ("l4", ">i4"),
            ("v", ">f8"),
        ]
    )


_REGION_ROW = copy_row(("i", ">i4"))
PG_EPOCH_US = 946_684_800 * 1_000_000  # 2000-01-01 in Unix microseconds
# Bytes of COPY data parsed at a time: the raw stream is twice the size of the arrays.
_PARSE_BYTES = 64 << 20
# Patients per pass over the window: bounds the sweep's memory (about 1.7 GB of arrays
# for 100,000 patients with one in ten on CGM).
LOAD_BLOCK_PATIENTS = 100_000


@dataclass
class Region:
    """A region loaded once for a sweep; ``chunk`` slices it for evaluation."""

    cohort: Cohort
    data: Dataset

    def chunk(self, lo: int, hi: int) -> tuple[Cohort, Dataset]:
        """Patients lo..hi-1: their cohort and series, patient indices renumbered from 0."""
        out: Dataset = {}
        for key, s in self.data.items():
            a, b = np.searchsorted(s.pat, [lo, hi])
            if b > a:
                out[key] = Series(s.pat[a:b] - lo, s.t[a:b], s.v[a:b])
        return self.cohort.slice(lo, hi), out


def window_sql() -> tuple[str, dict[str, Any]]:
    clauses, params = [], {}
    for g, (kinds, _) in enumerate(KIND_GROUPS):
        clauses.append(f"(o.kind = ANY(%(kinds{g})s) AND o.measured_at > to_timestamp(%(lo{g})s))")
        params[f"kinds{g}"] = list(kinds)
    return " OR ".join(clauses), params


def load_region(
    conn: psycopg.Connection[Any],
    patient_ids: Sequence[str] | None,
    now: float,
    *,
    block: int = LOAD_BLOCK_PATIENTS,
    cohort: Cohort | None = None,
) -> Region:
    """The cohort and every series the rules read for ``patient_ids`` (None: every active
    patient), reading the window once per ``block`` patients; equal to ``load_dataset``.

    ``cohort``: the patients' cohort, already loaded (``patient_ids`` is then not used).
    """
    if cohort is None:
        cohort = load_cohort(conn, patient_ids)
    if cohort.n == 0:
        return Region(cohort, {})
    windows, params = window_sql()
    sql = f"COPY ({_REGION_SQL.format(windows=windows)}) TO STDOUT (FORMAT BINARY)"
    pats, keys, times, values = [], [], [], []
    named: dict[str, list[tuple[Any, Any, Any]]] = {}
    for b0 in range(0, cohort.n, block):
        ids = cohort.patient_ids[b0 : b0 + block]
        params.update(keys=KNOWN_KEYS, ids=ids, lo=now - max(d for _, d in KIND_GROUPS) * SEC_PER_DAY, hi=now)
        for g, (_, days) in enumerate(KIND_GROUPS):
            params[f"lo{g}"] = now - days * SEC_PER_DAY
        unknown = False
        for rec in copy_records(conn, sql, params):
            pats.append(rec["i"].astype(np.int64) + b0)
            keys.append(rec["k"].astype(np.int32))
            times.append(rec["t"].astype(np.int64))
            values.append(rec["v"].astype(np.float64))
            unknown = unknown or bool((keys[-1] == 0).any())
        if unknown:
            # Components no rule reads (triage still sees that the series exists): by name.
            extra: dict[str, list[tuple[Any, Any, Any]]] = {}
            for kinds, days in KIND_GROUPS:
                p = {"keys": KNOWN_KEYS, "ids": ids, "kinds": list(kinds), "lo": now - days * SEC_PER_DAY, "hi": now}
                _fetch_arrays(conn, p, extra, "AND NOT (o.kind || '.' || o.component = ANY(%(keys)s::text[]))")
            for name, parts in extra.items():
                named.setdefault(name, []).extend((pp + b0, tt, vv) for pp, tt, vv in parts)
    data = group_rows(
        np.concatenate(pats) if pats else np.zeros(0, np.int64),
        np.concatenate(keys) if keys else np.zeros(0, np.int32),
        np.concatenate(times) if times else np.zeros(0, np.int64),
        np.concatenate(values) if values else np.zeros(0, np.float64),
        cohort.n,
    )
    for name, parts in named.items():
        data[name] = Series.build(*(np.concatenate([x[j] for x in parts]) for j in range(3)))
    log.debug("region: %d series, %d values for %d patients", len(data), sum(len(s) for s in data.values()), cohort.n)
    return Region(cohort, data)


def copy_records(
    conn: psycopg.Connection[Any], sql: str, params: dict[str, Any], row: np.dtype = _REGION_ROW
) -> Iterator[np.ndarray]:
    """The COPY's records (fixed-width ``row``s) as structured arrays, parsed every ``_PARSE_BYTES`` of stream.

    psycopg hands over one CopyData message (one row) at a time; joining them is the only
    per-row step in Python, the parsing is numpy's.
    """
    size = row.itemsize
    buf = bytearray()
    skip = _COPY_HEADER
    with conn.transaction():
        conn.execute(f"SET LOCAL work_mem = '{LOAD_WORK_MEM}'")
        conn.execute("SET LOCAL jit = off")
        with conn.cursor().copy(sql, params) as cp:
            for block in cp:
                buf += block
                if len(buf) >= _PARSE_BYTES:
                    n = (len(buf) - skip) // size
                    yield np.frombuffer(buf, dtype=row, count=n, offset=skip).copy()
                    del buf[: skip + n * size]
                    skip = 0
    n = (len(buf) - skip - 2) // size  # the 2-byte trailer
    if n > 0:
        yield np.frombuffer(buf, dtype=row, count=n, offset=skip).copy()


def group_rows(pat: np.ndarray, key: np.ndarray, micros: np.ndarray, v: np.ndarray, n_patients: int) -> Dataset:
    """Rows in any order → one sorted Series per known key.

    A stable sort by (key, patient) in two radix passes of 16 bits (numpy sorts 16-bit
    integers by radix: linear time); each patient's rows keep the stored order, which is
    time order but for late arrivals, and ``Series.build`` sorts only those patients.
    """
    if len(pat) == 0:
        return {}
    code = key.astype(np.int64) * max(n_patients, 1) + pat
    if int(code.max()) < 1 << 16:
        order = np.argsort(code.astype(np.uint16), kind="stable")
    else:
        order = np.argsort((code & 0xFFFF).astype(np.uint16), kind="stable")
        high = (code >> 16)[order]
        order = order[np.argsort(high.astype(np.uint16) if int(high.max()) < 1 << 16 else high, kind="stable")]
    key = key[order]
    # Unix microseconds, then one division: the same double as extract(epoch ...)::float8.
    t = (micros[order] + PG_EPOCH_US) / 1e6
    pat, v = pat[order], v[order]
    out: Dataset = {}
    bounds = np.flatnonzero(np.diff(key)) + 1
    for a, b in zip(np.r_[0, bounds], np.r_[bounds, len(key)], strict=True):
        k = int(key[a])
        if k > 0:
            out[KNOWN_KEYS[k - 1]] = Series.build(pat[a:b], t[a:b], v[a:b])
    return out
