"""Benchmark: one full evaluation of every rule over a synthetic region.

Default size: 100,000 patients × 28 days of spot measurements (weight, duplicate BP with
pulse, SpO2 with pulse, PEF blows, capillary glucose, temperature, symptom forms, by
condition) plus 10,000 CGM patients × 14 days at 5-minute resolution, generated in
memory already sorted the way the loader's ORDER BY returns them. Also times the
plain-Python per-patient reference implementation on a sample and the SQL
window-function equivalent of HF1 in a throwaway PostgreSQL (deploy.localstack).

    python benchmarks/bench_rules.py            # full size
    python benchmarks/bench_rules.py --smoke    # tiny, seconds
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg

from alerting import rules as rl
from alerting.cohort import Cohort
from alerting.engine import evaluate, evaluate_columns
from alerting.load import KIND_GROUPS, load_cohort, load_dataset, load_region
from alerting.partitions import partition_of
from alerting.region_cache import RegionCache
from alerting.series import SEC_PER_DAY, Dataset, Series
from alerting.service import store_findings
from benchmarks.obs_copy import copy_observations, patient_ids
from deploy.localstack import LocalPostgres
from schema.migrate import migrate
from tests.alerting.reference import RULES, reference_findings

NOW = 1_780_000_000.0  # a fixed Wednesday in 2026, so runs are comparable
CONDITIONS = ("diabetes_t1", "diabetes_t2", "heart_failure", "copd", "asthma", "hypertension")


def make_cohort(n: int, n_cgm: int, rng: np.random.Generator) -> tuple[Cohort, dict[str, np.ndarray]]:
    cond = {c: rng.random(n) < 0.3 for c in CONDITIONS}
    cond["diabetes_t1"][:n_cgm] = True  # the CGM users are the first n_cgm patients
    cond["diabetes_t2"][:n_cgm] = False
    cohort = Cohort(
        patient_ids=[f"p{i}" for i in range(n)],
        conditions=cond,
        dry_weight_kg=np.where(cond["heart_failure"], 80.0, np.nan),
        personal_best_pef=np.where(cond["asthma"], 500.0, np.nan),
        hypercapnic=cond["copd"] & (rng.random(n) < 0.3),
        schedule={
            "weight": cond["heart_failure"].astype(float),
            "blood_pressure": (cond["hypertension"] | cond["heart_failure"]) * 2.0,
            "spo2": (cond["copd"] | cond["heart_failure"]) * 1.0,
            "spirometry": cond["asthma"] * 2.0,
            "glucose_cgm": np.arange(n) < n_cgm,
        },
    )
    return cohort, cond


def spot(
    rng: np.random.Generator, pats: np.ndarray, days: int, per_day: int, base: np.ndarray, sd: float, repeats: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted (patient, time, value) for ``per_day`` sessions a day of ``repeats`` readings 1 min apart."""
    k = days * per_day
    day = np.repeat(np.arange(days), per_day)
    slot = np.tile(np.arange(per_day), days)
    t_session = NOW - (days - day) * SEC_PER_DAY + 7 * 3600 + slot * (12 * 3600 / max(per_day, 1))
    t_session = t_session[None, :] + rng.integers(0, 1800, size=(len(pats), k))
    t = (t_session[:, :, None] + np.arange(repeats)[None, None, :] * 60.0).reshape(len(pats), -1)
    # Weekly gaps make patients miss ~10 % of readings.
    v = base[pats][:, None] + rng.normal(0, sd, size=t.shape)
    keep = rng.random(t.shape) > 0.1
    p = np.broadcast_to(pats[:, None], t.shape)
    t = np.where(t > NOW, NOW - 1, t)
    return p[keep].astype(np.int64), t[keep].astype(np.float64), v[keep]


def make_data(n: int, n_cgm: int, cgm_days: int, seed: int = 1) -> tuple[Dataset, Cohort]:
    rng = np.random.default_rng(seed)
    cohort, cond = make_cohort(n, n_cgm, rng)
    days = 28
    rows: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    hf = np.flatnonzero(cond["heart_failure"])
    rows[rl.WEIGHT] = spot(rng, hf, days, 1, rng.normal(80, 8, n), 0.5)
    bp = np.flatnonzero(cond["hypertension"] | cond["heart_failure"])
    p, t, sys_ = spot(rng, bp, days, 2, rng.normal(135, 12, n), 8, repeats=2)
    rows[rl.SYSTOLIC] = (p, t, sys_)
    rows[rl.DIASTOLIC] = (p, t, sys_ * 0.62 + rng.normal(0, 3, len(p)))
    rows[rl.BP_PULSE] = (p, t, rng.normal(72, 9, len(p)))
    ox = np.flatnonzero(cond["copd"] | cond["heart_failure"])
    p, t, s = spot(rng, ox, days, 1, rng.normal(94, 2, n), 1.5, repeats=2)
    rows[rl.SPO2] = (p, t, np.minimum(s, 100))
    rows[rl.OXIMETER_PULSE] = (p, t, rng.normal(78, 8, len(p)))
    asth = np.flatnonzero(cond["asthma"])
    rows[rl.PEF] = spot(rng, asth, days, 2, rng.normal(450, 40, n), 40, repeats=3)
    dm = np.flatnonzero(cond["diabetes_t2"])
    rows[rl.CAPILLARY] = spot(rng, dm, days, 2, rng.normal(7, 1.5, n), 1.8)
    copd = np.flatnonzero(cond["copd"])
    rows[rl.TEMPERATURE] = spot(rng, copd, days, 1, np.full(n, 36.9), 0.4)
    for key in rl.SYMPTOM_COPD:
        p, t, s = spot(rng, copd, days, 1, np.zeros(n), 1)
        rows[key] = (p, t, (s > 1.6).astype(float))
    data = {k: Series(*v) for k, v in rows.items()}  # already sorted by (patient, time)
    # CGM: 288 readings a day, sorted; a daily sine plus noise, dips below 3.9 now and then.
    steps = cgm_days * 288
    t = NOW - (steps - 1 - np.arange(steps)) * 300.0 - 1.0
    pats = np.repeat(np.arange(n_cgm, dtype=np.int64), steps)
    tt = np.tile(t, n_cgm)
    phase = rng.uniform(0, 2 * np.pi, n_cgm)
    v = (
        8
        + 4 * np.sin(np.tile(t / 86400 * 2 * np.pi, n_cgm) + np.repeat(phase, steps))
        + rng.normal(0, 0.6, n_cgm * steps)
    )
    v = np.where(v < 2.2, -np.inf, v)  # sensor LOW
    data[rl.CGM] = Series(pats, tt, v)
    return data, cohort


def sample(data: Dataset, cohort: Cohort, idx: np.ndarray) -> tuple[Dataset, Cohort]:
    """The same patients as a small cohort of their own (indices renumbered 0..k-1)."""
    remap = np.full(cohort.n, -1, dtype=np.int64)
    remap[idx] = np.arange(len(idx))
    out = {}
    for k, s in data.items():
        m = remap[s.pat] >= 0
        out[k] = Series(remap[s.pat[m]], s.t[m], s.v[m])
    sub = Cohort(
        patient_ids=[cohort.patient_ids[i] for i in idx],
        conditions={c: a[idx] for c, a in cohort.conditions.items()},
        dry_weight_kg=cohort.dry_weight_kg[idx],
        personal_best_pef=cohort.personal_best_pef[idx],
        hypercapnic=cohort.hypercapnic[idx],
        schedule={k: a[idx] for k, a in cohort.schedule.items()},
    )
    return out, sub


def bench_sql(data: Dataset, n_patients: int) -> tuple[float, float, int]:
    """HF1 as a SQL window-function query over the same weights in a throwaway PostgreSQL."""
    base = Path(tempfile.mkdtemp(prefix="egenmon-bench-"))
    server = LocalPostgres(base, durable=False)
    try:
        server.start()
        s = data[rl.WEIGHT]
        m = s.pat < n_patients
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE w (patient int, measured_at timestamptz, value float8)")
            t0 = time.perf_counter()
            with conn.cursor().copy("COPY w (patient, measured_at, value) FROM STDIN") as cp:
                for p, t, v in zip(s.pat[m].tolist(), s.t[m].tolist(), s.v[m].tolist(), strict=True):
                    cp.write_row((p, datetime.fromtimestamp(t, UTC), v))
            conn.execute("CREATE INDEX ON w (patient, measured_at)")
            conn.execute("ANALYZE w")
            load_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            row = conn.execute(HF1_SQL, {"now": NOW}).fetchone()
            sql_s = time.perf_counter() - t0
        return load_s, sql_s, int(row[0]) if row else 0
    finally:
        server.stop(mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


def load_dataset_before(conn: psycopg.Connection[Any], cohort: Cohort, now: float) -> Dataset:
    """The loader as it was before the index-driven COPY (``patient_id = ANY(...)``), for the before figure."""
    ids = np.asarray(cohort.patient_ids)
    parts: dict[str, list[tuple[Any, Any, Any]]] = {}
    for kinds, days in KIND_GROUPS:
        cur = conn.cursor(binary=True)
        cur.execute(
            """
            SELECT kind || '.' || component, patient_id::text,
                   array_agg(extract(epoch FROM measured_at)::float8 ORDER BY measured_at),
                   array_agg(CASE censored WHEN 'low' THEN '-Infinity'::float8
                                           WHEN 'high' THEN 'Infinity'::float8
                                           ELSE coalesce(value, 'NaN'::float8) END ORDER BY measured_at)
            FROM observation
            WHERE kind = ANY(%s) AND patient_id = ANY(%s::uuid[])
              AND measured_at > to_timestamp(%s) AND measured_at <= to_timestamp(%s)
              AND status <> 'rejected'
            GROUP BY 1, 2
            """,
            (list(kinds), cohort.patient_ids, now - days * SEC_PER_DAY, now),
        )
        for key, pid, times, values in cur:
            i = int(np.searchsorted(ids, pid))
            t = np.asarray(times, dtype=np.float64)
            parts.setdefault(str(key), []).append(
                (np.full(len(t), i, dtype=np.int64), t, np.asarray(values, dtype=np.float64))
            )
    return {k: Series.build(*(np.concatenate([x[j] for x in v]) for j in range(3))) for k, v in parts.items()}


def seed_region(url: str, sd: Dataset, sc: Cohort) -> tuple[int, float]:
    """Patients, care plans and observations of the sampled region; (rows, seconds)."""
    t0 = time.perf_counter()
    ids = patient_ids(sc.n)
    with psycopg.connect(url, autocommit=True) as conn:
        unit = conn.execute("INSERT INTO care_unit (code, name) VALUES ('b', 'Bench') RETURNING id").fetchone()
        assert unit
        with conn.cursor().copy("COPY patient (id, pseudonym, display_name, unit_id) FROM STDIN") as cp:
            for i, pid in enumerate(ids):
                cp.write_row((pid, f"P-{i:06d}", "Bench", unit[0]))
        # Monitoring began well before the 28-day window, as for the in-memory cohort (no gap-rule grace).
        since = datetime.fromtimestamp(NOW - 60 * SEC_PER_DAY, UTC)
        with conn.cursor().copy(
            "COPY care_plan (patient_id, version, valid_from, conditions, dry_weight_kg, personal_best_pef, schedule,"
            " spo2_target) FROM STDIN"
        ) as cp:
            for i, pid in enumerate(ids):
                dw, pb = sc.dry_weight_kg[i], sc.personal_best_pef[i]
                sched = {k: float(a[i]) for k, a in sc.schedule.items() if a[i] > 0}
                cp.write_row(
                    (
                        pid,
                        1,
                        since,
                        [c for c, a in sc.conditions.items() if a[i]],
                        None if np.isnan(dw) else dw,
                        None if np.isnan(pb) else pb,
                        json.dumps(sched),
                        "hypercapnic" if sc.hypercapnic[i] else "standard",
                    )
                )
        # Indexes are built after the rows, as a restore would: far faster than row by row.
        conn.execute("ALTER TABLE observation DROP CONSTRAINT observation_pkey")
        conn.execute("DROP INDEX observation_patient_idx")
        # Ingested a day ago, as a region's history is: the steady-state sweep's incremental
        # read must not find the seeded window among the rows of its last few minutes.
        conn.execute("ALTER TABLE observation ALTER COLUMN ingested_at SET DEFAULT now() - interval '1 day'")
        rows = copy_observations(conn, [(k, s.pat, s.t, s.v) for k, s in sd.items()], sc.n)
        conn.execute("ALTER TABLE observation ALTER COLUMN ingested_at SET DEFAULT now()")
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("ALTER TABLE observation ADD PRIMARY KEY (reading_id, component, measured_at)")
        conn.execute("CREATE INDEX observation_patient_idx ON observation (patient_id, component, measured_at DESC)")
        conn.execute("VACUUM ANALYZE")
    return rows, time.perf_counter() - t0


def emit(line: str) -> None:
    print(line, flush=True)


def sweep_phases(
    conn: psycopg.Connection[Any], ids: list[str], chunk: int, loader: str, *, writes: bool = True
) -> tuple[float, float, float, list[tuple[str, str, str, float]]]:
    """The service's sweep path over ``ids``: (load s, evaluate s, lifecycle s, finding keys).

    ``loader``: "region" (the sweep's: the window read once, evaluated in chunks sliced from
    it), "chunked" (the sweep until now: each chunk loaded with ``load_dataset``), "arrays"
    (the same with array_agg) or "before" (``patient_id = ANY``).
    """
    load_s = eval_s = life_s = 0.0
    keys: list[tuple[str, str, str, float]] = []
    region = None
    if loader == "region":
        t0 = time.perf_counter()
        region = load_region(conn, ids, NOW)
        load_s += time.perf_counter() - t0
        n = region.cohort.n
    else:
        n = len(ids)
    for k in range(0, n, chunk):
        t0 = time.perf_counter()
        if region is not None:
            cohort, data = region.chunk(k, k + chunk)
        else:
            cohort = load_cohort(conn, ids[k : k + chunk])
            data = (
                load_dataset_before(conn, cohort, NOW)
                if loader == "before"
                else load_dataset(conn, cohort, NOW, method="copy" if loader == "chunked" else loader)
            )
        t1 = time.perf_counter()
        findings = evaluate(data, cohort, NOW)
        t2 = time.perf_counter()
        if writes:
            store_findings(conn, cohort, data, findings, NOW)
        t3 = time.perf_counter()
        load_s, eval_s, life_s = load_s + t1 - t0, eval_s + t2 - t1, life_s + t3 - t2
        keys += [(cohort.patient_ids[f.patient], f.rule_id, f.severity, f.at) for f in findings]
    return load_s, eval_s, life_s, keys


SWEEP_S = 300.0  # one sweep interval (EGENMON_ALERTING_SWEEP_INTERVAL_S)


def new_readings(
    sd: Dataset, n: int, t0: float, seconds: float, rng: np.random.Generator
) -> list[tuple[str, Any, Any, Any]]:
    """``seconds`` of the first ``n`` patients' readings after ``t0``, at the seeded data's daily rate.

    Each series gets its seeded daily rate (rows of those patients / its window's days) times
    ``seconds`` rows: a random sample of its seeded readings (patient and value) moved to
    random times in the interval (for CGM about one reading per CGM patient per 5 minutes).
    """
    out = []
    for key, s in sd.items():
        mine = s.pat < n
        if not mine.any():
            continue
        days = next(d for kinds, d in KIND_GROUPS if key.split(".", 1)[0] in kinds)
        k = round(int(mine.sum()) / days * seconds / SEC_PER_DAY)
        if k == 0:
            continue
        idx = rng.choice(np.flatnonzero(mine), k, replace=False)
        out.append((key, s.pat[idx], t0 + rng.uniform(0, seconds, k), s.v[idx]))
    return out


def bench_steady_state(
    conn: psycopg.Connection[Any], url: str, sd: Dataset, sub: list[str], chunk: int, step: int, check: bool
) -> tuple[float, float, float, float, int]:
    """Cold (full) load at one sweep's ``now``, then one interval's new readings and the
    incremental sweep: (cold load s, incremental load s, evaluate s, lifecycle s, rows inserted)."""
    n = len(sub)
    now0 = NOW + step * SWEEP_S
    now1 = now0 + SWEEP_S
    cache = RegionCache(full_reload_s=float("inf"))
    t0 = time.perf_counter()
    cache.load(conn, sub, now0)
    cold_s = time.perf_counter() - t0
    # Patient index i is UUID(int=i + 1) in the seeded region and in the sample alike.
    fresh = new_readings(sd, n, now0, SWEEP_S, np.random.default_rng(step))
    with psycopg.connect(url, autocommit=True) as ingest:
        inserted = copy_observations(ingest, fresh, n, seed=100 + step)
    t0 = time.perf_counter()
    region = cache.load(conn, sub, now1)
    inc_s = time.perf_counter() - t0
    report = cache.last
    assert report is not None
    assert not report.full
    eval_s = life_s = 0.0
    for k in range(0, region.cohort.n, chunk):
        cohort, data = region.chunk(k, k + chunk)
        t1 = time.perf_counter()
        findings = evaluate(data, cohort, now1)
        t2 = time.perf_counter()
        store_findings(conn, cohort, data, findings, now1)
        eval_s, life_s = eval_s + t2 - t1, life_s + time.perf_counter() - t2
    if check:
        full = load_region(conn, sub, now1)
        same = sorted(full.data) == sorted(region.data) and all(
            np.array_equal(full.data[k].pat, region.data[k].pat)
            and np.array_equal(full.data[k].t, region.data[k].t)
            and np.array_equal(full.data[k].v, region.data[k].v)
            for k in full.data
        )
        emit(f"steady state, {n:,} patients: cached region equals a full load: {same}")
    emit(
        f"steady-state sweep, {n:,} patients: {inserted:,} new rows ({SWEEP_S / 60:.0f} min at the seeded daily rate, "
        f"{inserted * SEC_PER_DAY / SWEEP_S:,.0f} rows/day), {report.rows:,} rows read; cold (full) load "
        f"{cold_s:.2f} s; incremental load {inc_s:.2f} s ({inc_s / n * 1e6:.1f} us/patient: care plans "
        f"{report.cohort_s:.2f} s, reads {report.read_s:.2f} s, merge {report.merge_s:.2f} s), "
        f"evaluate {eval_s:.2f} s, "
        f"load + evaluate {inc_s + eval_s:.2f} s; lifecycle writes {life_s:.2f} s "
        f"(load average {os.getloadavg()[0]:.1f})"
    )
    return cold_s, inc_s, eval_s, life_s, inserted


def explain_incremental(conn: psycopg.Connection[Any], ids: list[str]) -> None:
    """Which index the incremental read's plan uses on the seeded table."""
    cache = RegionCache(full_reload_s=float("inf"))
    cache.load(conn, ids[:1], NOW)
    query, _, params = cache.since_queries(NOW + SWEEP_S)
    plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + query, params))
    uses = "observation_ingested_brin" in plan
    nodes = [
        line.strip().lstrip("-> ").split("  (")[0] for line in plan.splitlines() if "Scan" in line or "BitmapOr" in line
    ]
    emit(f"incremental read plan uses the ingested_at BRIN index: {uses} ({'; '.join(nodes)})")


def _partition_sweep(url: str, ids: list[str], chunk: int, k: int, n: int) -> tuple[float, float, float, float]:
    """Worker ``k`` of ``n``: the sweep of its partitions' patients (a process of its own)."""
    mine = [p for p in ids if partition_of(p, n) == k]
    with psycopg.connect(url, autocommit=True) as conn:
        t0 = time.perf_counter()
        load_s, eval_s, life_s, _ = sweep_phases(conn, mine, chunk, "region")
        return load_s, eval_s, life_s, time.perf_counter() - t0


def bench_partitioned(url: str, ids: list[str], chunk: int, workers: int, single_s: float) -> None:
    """N workers sweeping their shares at once (each its own process and connection)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE alert, alert_event, alert_finding, patient_message CASCADE")
    ctx = multiprocessing.get_context("spawn")
    t0 = time.perf_counter()
    with ctx.Pool(workers) as pool:
        res = pool.starmap(_partition_sweep, [(url, ids, chunk, k, workers) for k in range(workers)])
    wall = time.perf_counter() - t0
    parts = "; ".join(
        f"worker {k}: load {r[0]:.2f} s, evaluate {r[1]:.2f} s, writes {r[2]:.2f} s" for k, r in enumerate(res)
    )
    slowest = max(r[3] for r in res)
    emit(
        f"sweep by {workers} partitioned workers, {len(ids):,} patients: slowest worker {slowest:.2f} s "
        f"(one worker: {single_s:.2f} s -> x{single_s / slowest:.2f}); {parts}; wall with process start "
        f"{wall:.2f} s (load average {os.getloadavg()[0]:.1f})"
    )


def bench_db_sweep(
    data: Dataset,
    cohort: Cohort,
    sizes: list[int],
    chunk: int,
    before_sizes: int,
    trials: int = 1,
    workers: int = 2,
    per_chunk: bool = True,
) -> None:
    """The sweep from PostgreSQL at each region size: load, evaluate, lifecycle writes, and their growth."""
    base = Path(tempfile.mkdtemp(prefix="egenmon-bench-"))
    server = LocalPostgres(base, durable=False)
    try:
        server.start()
        os.environ["EGENMON_DISABLE_TIMESCALEDB"] = "1"
        migrate(server.url)
        # A region's mix: one patient in ten uses CGM (the CGM patients are the first indices).
        n_max = min(max(sizes), cohort.n)
        n_cgm_users = int(cohort.schedule["glucose_cgm"].sum())
        k = min(n_max // 10, n_cgm_users)
        idx = np.r_[np.arange(k), np.arange(n_cgm_users, n_cgm_users + n_max - k)]
        # Interleave CGM users among the others, so every prefix of the ids has the same mix.
        idx = idx[np.argsort(np.r_[np.arange(k) * (n_max / max(k, 1)), np.arange(n_max - k) + 0.5], kind="stable")]
        sd, sc = sample(data, cohort, idx[idx < cohort.n])
        sd = {key: Series.build(s.pat, s.t, s.v) for key, s in sd.items()}  # sorted by the new indices
        rows, seed_s = seed_region(server.url, sd, sc)
        emit(
            f"DB region: {sc.n:,} patients ({k:,} CGM), {rows:,} observation rows, interleaved in time; "
            f"seeded in {seed_s:.0f} s; sweep chunk {chunk:,} patients"
        )
        ids = patient_ids(sc.n)
        with psycopg.connect(server.url, autocommit=True) as conn:
            prev: tuple[int, float] | None = None
            steady_runs: list[tuple[int, tuple[float, float, float, float, int]]] = []
            explain_incremental(conn, ids)
            for n in sorted(s for s in sizes if s <= sc.n):
                sub = ids[:n]
                # Interleaved trials, medians: the machine is shared.
                region_runs, chunked_runs = [], []
                keys: list[tuple[str, str, str, float]] = []
                for _ in range(trials):
                    conn.execute("TRUNCATE alert, alert_event, alert_finding, patient_message CASCADE")
                    load_s, eval_s, life_s, keys = sweep_phases(conn, sub, chunk, "region")
                    region_runs.append((load_s, eval_s, life_s))
                    if per_chunk:
                        chunked_runs.append(sweep_phases(conn, sub, chunk, "chunked", writes=False)[0])
                load_s, eval_s, life_s = (float(np.median([r[j] for r in region_runs])) for j in range(3))
                chunked_s = float(np.median(chunked_runs)) if chunked_runs else float("nan")
                total = load_s + eval_s + life_s
                growth = (
                    f"; x{(load_s + eval_s) / prev[1]:.2f} load + evaluate for x{n / prev[0]:.1f} patients"
                    if prev
                    else ""
                )
                versus = f"; per-chunk loader {chunked_s:.2f} s -> {chunked_s / load_s:.1f}x" if chunked_runs else ""
                emit(
                    f"sweep from PostgreSQL, {n:,} patients (median of {trials}): load {load_s:.2f} s "
                    f"({load_s / n * 1e3:.3f} ms/patient{versus}), evaluate {eval_s:.2f} s, "
                    f"lifecycle writes {life_s:.2f} s = "
                    f"{total:.2f} s; load + evaluate {load_s + eval_s:.2f} s{growth} "
                    f"(load average {os.getloadavg()[0]:.1f})"
                )
                prev = (n, load_s + eval_s)
                steady = bench_steady_state(conn, server.url, sd, sub, chunk, len(steady_runs), check=True)
                steady_runs.append((n, steady))
                if n == sc.n:
                    # The loader must reproduce the in-memory arrays: same findings either way.
                    back = {pid: int(uuid.UUID(pid).int) - 1 for pid in sub}
                    via_db = {(back[p], r, s, a) for p, r, s, a in keys}
                    in_memory = {f.key for f in evaluate(sd, sc, NOW, with_evidence=False)}
                    if via_db != in_memory:
                        print(
                            "only via DB:",
                            sorted(via_db - in_memory)[:5],
                            "only in memory:",
                            sorted(in_memory - via_db)[:5],
                        )
                    emit(f"same findings as in memory: {via_db == in_memory} ({len(via_db):,} findings)")
            for (n0, a), (n1, b) in itertools.pairwise(steady_runs):
                emit(
                    f"steady-state load + evaluate x{(b[1] + b[2]) / (a[1] + a[2]):.2f} for x{n1 / n0:.1f} patients "
                    f"({n0:,} -> {n1:,}: {a[1] + a[2]:.2f} s -> {b[1] + b[2]:.2f} s)"
                )
            if workers > 1 and prev is not None:
                bench_partitioned(server.url, ids[: prev[0]], chunk, workers, total)
            n_cmp = min(before_sizes, sc.n)
            if n_cmp > 0:
                sub = ids[:n_cmp]
                figures = {
                    loader: sweep_phases(conn, sub, chunk, loader, writes=False)[0]
                    for loader in ("before", "arrays", "chunked", "region")
                }
                emit(
                    f"loader on {n_cmp:,} patients (chunks of {chunk:,}): before (patient_id = ANY, array_agg) "
                    f"{figures['before']:.2f} s; index-driven array_agg per chunk {figures['arrays']:.2f} s; "
                    f"index-driven binary COPY per chunk {figures['chunked']:.2f} s; "
                    f"region binary COPY, window read once {figures['region']:.2f} s (kept) -> "
                    f"{figures['before'] / figures['region']:.1f}x faster than before"
                )
    finally:
        server.stop(mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


# HF1 (morning weight − lowest morning weight of the 3 days before > 2 kg, morning reading
# within the rule's 36-hour lookback) as one window-function query.
HF1_SQL = """
WITH morning AS (
    SELECT DISTINCT ON (patient, day) patient, day, measured_at, value
    FROM (SELECT patient, measured_at, value, (measured_at AT TIME ZONE 'Europe/Stockholm')::date AS day
          FROM w WHERE measured_at > to_timestamp(%(now)s) - interval '29 days'
                   AND measured_at <= to_timestamp(%(now)s)) x
    ORDER BY patient, day, measured_at
), gains AS (
    SELECT patient, measured_at, value - min(value) OVER (
        PARTITION BY patient ORDER BY day
        RANGE BETWEEN interval '3 days' PRECEDING AND interval '1 day' PRECEDING) AS gain
    FROM morning
)
SELECT count(DISTINCT patient) FROM gains
WHERE gain > 2.0 AND measured_at > to_timestamp(%(now)s) - interval '36 hours'
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, a few seconds")
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("--cgm-patients", type=int, default=10_000)
    ap.add_argument("--sample", type=int, default=300, help="patients for the reference implementation")
    ap.add_argument("--sql-patients", type=int, default=100_000)
    ap.add_argument(
        "--db-sizes", default="25000,50000,100000", help="region sizes (patients) for the sweep from PostgreSQL"
    )
    ap.add_argument("--chunk", type=int, default=5000, help="sweep chunk (EGENMON_ALERTING_SWEEP_CHUNK)")
    ap.add_argument("--before-patients", type=int, default=25_000, help="patients for the loader comparison")
    ap.add_argument("--workers", type=int, default=2, help="partitioned workers for the N-worker sweep (1: none)")
    ap.add_argument("--trials", type=int, default=1, help="interleaved sweep trials per size (medians)")
    ap.add_argument(
        "--per-chunk",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time the per-chunk loader of before at each size (it reads the window once per chunk)",
    )
    ap.add_argument("--no-sql", action="store_true")
    ap.add_argument(
        "--db-only", action="store_true", help="only the sweep from PostgreSQL (no in-memory, reference or SQL figures)"
    )
    a = ap.parse_args()
    if a.smoke:
        a.patients, a.cgm_patients, a.sample, a.sql_patients = 400, 40, 40, 400
        a.db_sizes, a.chunk, a.before_patients = "200,400", 100, 0
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (shared with other test suites)")
    t0 = time.perf_counter()
    data, cohort = make_data(a.patients, a.cgm_patients, 14)
    n_values = sum(len(s) for s in data.values())
    n_cgm = len(data[rl.CGM])
    print(
        f"data: {a.patients:,} patients x 28 days spot + {a.cgm_patients:,} CGM patients x 14 days at 5 min; "
        f"{n_values:,} values ({n_cgm:,} CGM), generated in {time.perf_counter() - t0:.1f} s"
    )

    if a.db_only:
        sizes = [int(s) for s in a.db_sizes.split(",")]
        bench_db_sweep(data, cohort, sizes, a.chunk, a.before_patients, a.trials, a.workers, a.per_chunk)
        return
    gc.collect()
    runs = []
    for _ in range(1 if a.smoke else 3):
        t0 = time.perf_counter()
        cols = evaluate_columns(data, cohort, NOW)
        runs.append(time.perf_counter() - t0)
    full_s = min(runs)
    fired = sum(len(o.pat) for o in cols.values())
    print(
        f"full evaluation: {len(cols)} rules over all patients: best {full_s:.2f} s of {len(runs)} "
        f"(runs: {', '.join(f'{r:.2f}' for r in runs)}), {fired:,} findings"
    )
    per_rule = []
    for rid in rl.REGISTRY:
        t1 = time.perf_counter()
        evaluate_columns(data, cohort, NOW, rules=[rid])
        per_rule.append((time.perf_counter() - t1, rid))
    print("slowest rules alone: " + ", ".join(f"{r} {s:.2f} s" for s, r in sorted(per_rule, reverse=True)[:6]))
    t0 = time.perf_counter()
    findings = evaluate(data, cohort, NOW)
    obj_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for f in findings[:1000]:
        _ = f.evidence
    ev_s = time.perf_counter() - t0
    print(
        f"as Finding objects: {obj_s:.2f} s for {len(findings):,} findings; "
        f"evidence JSON (readings, thresholds) {ev_s / max(min(len(findings), 1000), 1) * 1e6:.0f} us per finding"
    )
    del findings

    # Reference: plain Python, patient by patient, on a uniform random sample; the
    # vectorised side is timed on the same rules over the whole region.
    rng = np.random.default_rng(7)
    idx = np.sort(rng.choice(a.patients, min(a.sample, a.patients), replace=False))
    sd, sc = sample(data, cohort, idx)
    t0 = time.perf_counter()
    ref = reference_findings(sd, sc, NOW)
    ref_s = time.perf_counter() - t0
    vec = {f.key for f in evaluate(sd, sc, NOW, rules=list(RULES), with_evidence=False)}
    sub_runs = []
    for _ in range(1 if a.smoke else 3):  # best of 3, like the full evaluation
        t0 = time.perf_counter()
        evaluate_columns(data, cohort, NOW, rules=list(RULES))
        sub_runs.append(time.perf_counter() - t0)
    vec_s = min(sub_runs)
    per_ref = ref_s / len(idx)
    per_vec = vec_s / a.patients
    print(
        f"reference ({len(RULES)} rules) on {len(idx)} sampled patients: {ref_s:.2f} s = "
        f"{per_ref * 1e3:.3f} ms/patient; "
        f"vectorised same rules on {a.patients:,}: {vec_s:.2f} s = {per_vec * 1e6:.2f} us/patient; "
        f"speedup {per_ref / per_vec:.0f}x; findings identical: {vec == ref} ({len(ref)} findings)"
    )

    if not a.no_sql:
        n_sql = min(a.sql_patients, a.patients)
        load_s, sql_s, sql_n = bench_sql(data, n_sql)
        sub = np.arange(n_sql)
        sd2, sc2 = sample(data, cohort, sub)
        hf_only = Cohort(
            sc2.patient_ids,
            {"heart_failure": np.ones(sc2.n, bool)},
            sc2.dry_weight_kg,
            sc2.personal_best_pef,
            sc2.hypercapnic,
        )
        t0 = time.perf_counter()
        np_n = len(evaluate_columns(sd2, hf_only, NOW, rules=["HF1"])["HF1"].pat)
        np_s = time.perf_counter() - t0
        print(
            f"HF1 over {n_sql:,} patients' weights ({int((data[rl.WEIGHT].pat < n_sql).sum()):,} rows): "
            f"SQL window query {sql_s:.3f} s ({sql_n} patients fire; COPY load {load_s:.1f} s) vs numpy {np_s:.3f} s "
            f"({np_n} patients fire) -> numpy {sql_s / np_s:.0f}x faster; same patients count: {sql_n == np_n}"
        )
        sizes = [int(s) for s in a.db_sizes.split(",")]
        bench_db_sweep(data, cohort, sizes, a.chunk, a.before_patients, a.trials, a.workers, a.per_chunk)


if __name__ == "__main__":
    main()
