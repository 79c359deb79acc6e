"""The sweep's region cache: after any inserts and any time step it equals ``load_region`` from scratch."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerting.cohort import Cohort
from alerting.engine import evaluate
from alerting.load import Region, load_region
from alerting.region_cache import RegionCache, merge_series, uuid_bytes
from alerting.series import SEC_PER_DAY, SEC_PER_HOUR, Series
from alerting.service import AlertingService
from alerting.settings import AlertingSettings
from tests.alerting.dbdata import make_patient
from tests.fixtures.db import create_test_database, drop_test_database

NOW = 1_780_000_000.0
CGM = "glucose_cgm.glucose_interstitial"


def _obs(
    db: psycopg.Connection[Any],
    pid: str,
    kind: str,
    component: str,
    at: float,
    value: float | None,
    *,
    censored: str | None = None,
    status: str = "valid",
    ingested_at: float | None = None,
) -> None:
    """One observation row; ``ingested_at`` None: the insert's transaction start, as ingest's."""
    db.execute(
        """
        INSERT INTO observation (reading_id, component, measured_at, patient_id, gateway_id, device_address, kind,
                                 value, unit, censored, status, received_at, ingested_at)
        VALUES (%s, %s, %s, %s, 'gw-test-1', 'AA:BB:CC:DD:EE:FF', %s, %s, 'x', %s, %s, %s,
                coalesce(to_timestamp(%s), now()))
        """,
        (str(uuid.uuid4()), component, datetime.fromtimestamp(at, UTC), pid, kind, value, censored, status,
         datetime.fromtimestamp(at, UTC), ingested_at),
    )  # fmt: skip


def _value_equal(a: object, b: object) -> bool:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_value_equal(a[k], b[k]) for k in a)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_value_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def assert_same_region(got: Region, want: Region) -> None:
    """Array for array: the cohort's every field and every series' three arrays."""
    for f in dataclasses.fields(Cohort):
        assert _value_equal(getattr(got.cohort, f.name), getattr(want.cohort, f.name)), f.name
    assert sorted(got.data) == sorted(want.data)
    for key, s in want.data.items():
        g = got.data[key]
        assert g.pat.dtype == s.pat.dtype, key
        assert g.t.dtype == s.t.dtype, key
        assert g.v.dtype == s.v.dtype, key
        assert np.array_equal(g.pat, s.pat), key
        assert np.array_equal(g.t, s.t), key  # bit for bit: the same doubles
        assert np.array_equal(g.v, s.v), key


def _finding_keys(region: Region, now: float) -> set[tuple[str, str, str, float]]:
    return {
        (region.cohort.patient_ids[f.patient], f.rule_id, f.severity, f.at)
        for f in evaluate(region.data, region.cohort, now, with_evidence=False)
    }


def _seed(db: psycopg.Connection[Any]) -> list[str]:
    """Five patients' month; ingested an hour ago, so no overlap reads them again."""
    pids = []
    hour_ago = time.time() - 3600
    for i in range(5):
        conditions = ["diabetes_t1", "heart_failure"] if i % 2 else ["copd", "hypertension"]
        pid = make_patient(db, conditions, schedule={"weight": 1, "blood_pressure": 2})
        pids.append(pid)
        for d in range(31):  # beyond the 29-day grid at the far end
            at = NOW - d * SEC_PER_DAY - 3600.0 * (i + 1) - 0.123456
            _obs(db, pid, "weight", "weight", at, 80.0 + (d % 3) * 0.7, ingested_at=hour_ago)
            _obs(db, pid, "spo2", "spo2", at + 60, 93.0 - i, status="flagged", ingested_at=hour_ago)
            _obs(db, pid, "spo2", "spo2", at + 120, 70.0, status="rejected", ingested_at=hour_ago)  # never loaded
            _obs(db, pid, "blood_pressure", "systolic", at + 30, 150.0 + d % 7, ingested_at=hour_ago)
            _obs(db, pid, "blood_pressure", "mean_arterial", at + 30, 100.0, ingested_at=hour_ago)  # read by no rule
        if i % 2:
            for k in range(16 * 24):  # CGM hourly for 16 days: the window keeps 14.5
                at = NOW - k * SEC_PER_HOUR - 0.5
                censored = "low" if k % 50 == 0 else "high" if k % 77 == 0 else None
                _obs(db, pid, "glucose_cgm", "glucose_interstitial", at, None if censored else 3.0 + k % 9,
                     censored=censored, ingested_at=hour_ago)  # fmt: skip
        _obs(db, pid, "weight", "weight", NOW + 60, 99.0, ingested_at=hour_ago)  # after now: in the window only later
    return pids


def test_the_cached_region_equals_a_full_load_after_every_change(db: psycopg.Connection[Any]) -> None:
    pids = _seed(db)
    cache = RegionCache(full_reload_s=1e9, overlap_s=60.0)
    region = cache.load(db, None, NOW)
    assert cache.last is not None
    assert cache.last.full
    assert cache.last.reason == "first load"
    assert_same_region(region, load_region(db, None, NOW))
    assert NOW + 60 not in region.data["weight.weight"].t

    # Five minutes on: new readings, a late one, duplicates, a row in the overlap, a new
    # patient, a deactivated one and a care-plan change.
    now = NOW + 300
    a, b, c = pids[0], pids[1], pids[2]
    _obs(db, b, "glucose_cgm", "glucose_interstitial", now - 100, 2.8)
    _obs(db, b, "glucose_cgm", "glucose_interstitial", NOW - 0.5, 9.9)  # same time as a stored one, higher: dropped
    _obs(db, b, "glucose_cgm", "glucose_interstitial", NOW - SEC_PER_HOUR - 0.5, 1.5)  # lower: replaces it
    _obs(db, a, "weight", "weight", NOW - 5 * SEC_PER_DAY, 84.0)  # late: lands in the middle
    _obs(db, a, "blood_pressure", "mean_arterial", now - 50, 101.0)
    _obs(db, a, "blood_pressure", "systolic", now - 50, 185.0)
    # Committed only now, but its ingest transaction began 30 s before the last read: the overlap sees it.
    _obs(db, c, "weight", "weight", NOW - 2 * SEC_PER_DAY, 85.0, ingested_at=cache.watermark - 30)
    # Older than the overlap: the incremental read cannot see it (the hourly full reload does).
    _obs(db, c, "weight", "weight", NOW - 3 * SEC_PER_DAY, 86.0, ingested_at=cache.watermark - 600)
    new = make_patient(db, ["heart_failure"], schedule={"weight": 1})
    for d in range(20):  # the new patient's history: their whole window is read
        _obs(db, new, "weight", "weight", now - d * SEC_PER_DAY - 77.0, 90.0, ingested_at=cache.watermark - 86400)
    db.execute("UPDATE patient SET active = false WHERE id = %s", (pids[3],))
    db.execute(
        "INSERT INTO care_plan (patient_id, version, valid_from, conditions, thresholds, schedule, dry_weight_kg) "
        "VALUES (%s, 2, '2020-06-01T00:00:00Z', %s, %s, %s, 77.5)",
        (
            pids[4],
            ["heart_failure", "copd"],
            json.dumps({"HF1": {"gain_kg": 1.5}, "routing": {"HF1": "staff"}, "confirmation": {"HF1": False}}),
            json.dumps({"weight": 2, "temperature": 0}),  # a kind named at 0 a day is still in the schedule
        ),
    )
    db.execute("UPDATE patient SET pseudonym = 'P-renamed', birth_year = 1941 WHERE id = %s", (a,))
    region = cache.load(db, None, now)
    assert cache.last is not None
    assert not cache.last.full
    assert (cache.last.added, cache.last.removed) == (1, 1)
    full = load_region(db, None, now)
    assert 86.0 not in region.data["weight.weight"].v  # the row older than the overlap
    assert 86.0 in full.data["weight.weight"].v
    assert np.isnan(region.cohort.dry_weight_kg).any()
    assert 77.5 in region.cohort.dry_weight_kg
    assert "temperature" in region.cohort.schedule
    assert region.cohort.pseudonyms is not None
    assert "P-renamed" in region.cohort.pseudonyms
    missed = full.data["weight.weight"]
    full.data["weight.weight"] = missed.select(missed.v != 86.0)
    assert_same_region(region, full)
    assert NOW + 60 in region.data["weight.weight"].t  # measured ahead of the last now, stored before it
    assert 1.5 in region.data[CGM].v
    assert 9.9 not in region.data[CGM].v
    assert _finding_keys(region, now) == _finding_keys(full, now)

    cache.invalidate()  # the safety net: a full reload sees the row the overlap missed
    region = cache.load(db, None, now)
    assert cache.last is not None
    assert cache.last.full
    assert cache.last.reason == "invalidated"
    assert_same_region(region, load_region(db, None, now))

    # Two days on: rows leave each kind group's window; the patient comes back.
    now = NOW + 2 * SEC_PER_DAY
    db.execute("UPDATE patient SET active = true WHERE id = %s", (pids[3],))
    _obs(db, b, "glucose_cgm", "glucose_interstitial", now - 10, 3.3)
    _obs(db, new, "weight", "weight", now - 3600, 92.5)
    before = int((region.data[CGM].pat == region.cohort.patient_ids.index(b)).sum())
    region = cache.load(db, None, now)
    assert cache.last is not None
    assert not cache.last.full
    assert cache.last.added == 1
    full = load_region(db, None, now)
    assert_same_region(region, full)
    # Two days of hourly readings left the 14.5 days (one new one came).
    assert int((region.data[CGM].pat == region.cohort.patient_ids.index(b)).sum()) == before - 48 + 1
    assert _finding_keys(region, now) == _finding_keys(full, now)
    assert _finding_keys(full, now)  # the comparison compares something


def test_full_reloads_when_scope_changes_time_goes_back_or_the_period_is_over(
    db: psycopg.Connection[Any], database_url: str
) -> None:
    pids = _seed(db)
    clock = [0.0]
    cache = RegionCache(full_reload_s=3600.0, clock=lambda: clock[0])
    mine = sorted(pids)[:3]
    cache.load(db, mine, NOW, scope=frozenset({0}))
    cache.load(db, mine, NOW + 60, scope=frozenset({0}))
    assert cache.last is not None
    assert not cache.last.full
    region = cache.load(db, sorted(pids), NOW + 120, scope=frozenset({0, 1}))
    assert cache.last.full
    assert cache.last.reason == "scope changed"
    assert region.cohort.patient_ids == sorted(pids)
    cache.load(db, sorted(pids), NOW + 60, scope=frozenset({0, 1}))
    assert cache.last.full
    assert cache.last.reason == "now went back"
    clock[0] = 3600.0
    cache.load(db, sorted(pids), NOW + 180, scope=frozenset({0, 1}))
    assert cache.last.full
    assert cache.last.reason == "periodic"
    gone = psycopg.connect(database_url, autocommit=True)
    gone.close()
    with pytest.raises(psycopg.Error):
        cache.load(gone, None, NOW + 240, scope=frozenset({0, 1}))
    assert cache.region is None
    cache.load(db, sorted(pids), NOW + 240, scope=frozenset({0, 1}))
    assert cache.last.full
    assert cache.last.reason == "after a failed load"
    zero = RegionCache(full_reload_s=0)
    zero.load(db, None, NOW)
    zero.load(db, None, NOW + 60)
    assert zero.last is not None
    assert zero.last.full
    assert zero.last.reason == "cache off"
    assert zero.region is None  # nothing kept between sweeps


def test_the_incremental_read_uses_the_ingested_at_index(db: psycopg.Connection[Any]) -> None:
    pid = make_patient(db, ["diabetes_t1"])
    # Many rows ingested long ago, a few now: the plan must not scan the table.
    db.execute(
        """
        INSERT INTO observation (reading_id, component, measured_at, patient_id, gateway_id, device_address, kind,
                                 value, unit, received_at, ingested_at)
        SELECT gen_random_uuid(), 'glucose_interstitial', to_timestamp(%(now)s) - make_interval(secs => g * 60),
               %(pid)s, 'gw-test-1', 'AA', 'glucose_cgm', 5.0, 'x', now(), now() - make_interval(secs => g)
        FROM generate_series(1, 200000) g
        """,
        {"now": NOW, "pid": pid},
    )
    db.execute("ANALYZE observation")
    cache = RegionCache()
    cache.load(db, None, NOW)
    query, _, params = cache.since_queries(NOW)
    plan = "\n".join(r[0] for r in db.execute("EXPLAIN " + query, params))
    assert "observation_ingested_brin" in plan, plan


def test_a_sweep_with_a_warm_cache_finds_what_a_full_load_finds(db: psycopg.Connection[Any], database_url: str) -> None:
    """The service's sweep: the second one reads incrementally and raises the alert of a reading since the first."""
    real_now = time.time()
    pids = []
    for i in range(4):
        pid = make_patient(db, ["diabetes_t2"], schedule={"glucose_capillary": 1})
        pids.append(pid)
        for d in range(10):
            _obs(db, pid, "glucose_capillary", "glucose", real_now - d * SEC_PER_DAY - 600 - i, 6.5)
    service = AlertingService(AlertingSettings(database_url=database_url, sweep_chunk=2, metrics_port=0))
    service.sweep(db)
    cache = service.region_cache
    assert cache.last is not None
    assert cache.last.full
    assert not db.execute("SELECT 1 FROM alert_finding WHERE rule_id = 'D4'").fetchall()
    _obs(db, pids[1], "glucose_capillary", "glucose", time.time() - 5, 2.4)  # a low since the sweep
    service.sweep(db)
    assert cache.last is not None
    assert not cache.last.full
    assert cache.region is not None
    full = load_region(db, None, cache.now)
    assert_same_region(cache.region, full)
    assert _finding_keys(cache.region, cache.now) == _finding_keys(full, cache.now)
    found = db.execute("SELECT patient_id::text, severity FROM alert_finding WHERE rule_id = 'D4'").fetchall()
    assert found == [(pids[1], "high")]


# -- merging, without the database -----------------------------------------------------------------------------


def _rows(draw: st.DrawFn, n_pat: int, t_max: int, size: int) -> Series:
    rows = draw(
        st.lists(st.tuples(st.integers(0, max(n_pat - 1, 0)), st.integers(0, t_max), st.integers(0, 3)), max_size=size)
    )
    if n_pat == 0:
        rows = []
    return Series.build([r[0] for r in rows], [float(r[1]) for r in rows], [float(r[2]) for r in rows])


@st.composite
def merges(draw: st.DrawFn) -> tuple[Series, Series, float, np.ndarray | None]:
    n_old = draw(st.integers(0, 6))
    cached = _rows(draw, n_old, 30, 40)
    remap = None
    n_new = n_old
    if n_old and draw(st.booleans()):
        kept = draw(st.lists(st.booleans(), min_size=n_old, max_size=n_old))
        added = draw(st.lists(st.integers(0, 2), min_size=n_old + 1, max_size=n_old + 1))
        remap = np.full(n_old, -1, dtype=np.int64)
        nxt = 0
        for i in range(n_old):
            nxt += added[i]
            if kept[i]:
                remap[i] = nxt
                nxt += 1
        n_new = nxt + added[n_old]
    lo = float(draw(st.integers(-1, 25)))
    new = _rows(draw, n_new, 40, 20)
    return cached, new.select(new.t > lo), lo, remap


@settings(max_examples=300, deadline=None)
@given(merges())
def test_merging_equals_building_from_all_rows(case: tuple[Series, Series, float, np.ndarray | None]) -> None:
    cached, new, lo, remap = case
    got = merge_series(cached, new, lo, remap)
    pat = cached.pat if remap is None else remap[cached.pat]
    keep = (pat >= 0) & (cached.t > lo)
    want = Series.build(np.r_[pat[keep], new.pat], np.r_[cached.t[keep], new.t], np.r_[cached.v[keep], new.v])
    assert np.array_equal(got.pat, want.pat)
    assert np.array_equal(got.t, want.t)
    assert np.array_equal(got.v, want.v)


def test_merging_never_writes_to_the_cached_arrays() -> None:
    cached = Series.build([0, 0, 1], [1.0, 2.0, 3.0], [5.0, 5.0, 5.0])
    before = [a.copy() for a in (cached.pat, cached.t, cached.v)]
    # Old patient 1 is now 2; new patient 1 joined; (0, 2.0) comes again, lower; (0, 1.0) left the window.
    got = merge_series(cached, Series.build([0, 1], [2.0, 4.0], [1.0, 1.0]), 1.5, np.array([0, 2]))
    assert got.pat.tolist() == [0, 1, 2]
    assert got.t.tolist() == [2.0, 4.0, 3.0]
    assert got.v.tolist() == [1.0, 1.0, 5.0]
    assert all(np.array_equal(a, b) for a, b in zip(before, (cached.pat, cached.t, cached.v), strict=True))


def test_uuid_bytes_sort_like_the_canonical_text() -> None:
    ids = sorted([*(str(uuid.uuid4()) for _ in range(500)), "00000000-0000-0000-0000-000000000000"])
    packed = uuid_bytes(ids)
    assert [bytes(b).ljust(16, b"\0") for b in packed] == [uuid.UUID(i).bytes for i in ids]
    assert (np.argsort(packed, kind="stable") == np.arange(len(ids))).all()


# -- random insert sequences against the database ---------------------------------------------------------------

STEP = st.one_of(
    st.tuples(st.just("cgm"), st.integers(0, 3), st.floats(0, 16 * SEC_PER_DAY), st.integers(0, 12)),
    st.tuples(st.just("weight"), st.integers(0, 3), st.floats(0, 31 * SEC_PER_DAY), st.integers(70, 90)),
    st.tuples(st.just("unknown"), st.integers(0, 3), st.floats(0, 20 * SEC_PER_DAY), st.integers(90, 110)),
    st.tuples(st.just("time"), st.integers(0, 3), st.floats(60, 3 * SEC_PER_DAY), st.integers(0, 0)),
    st.tuples(st.just("toggle"), st.integers(0, 3), st.floats(0, 0), st.integers(0, 0)),
    st.tuples(st.just("plan"), st.integers(0, 3), st.floats(0, 0), st.integers(0, 7)),
)
PLANS = (
    (["diabetes_t1"], {}, {}),
    (["heart_failure"], {"weight": 1}, {"HF1": {"gain_kg": 1.5}}),
    (["copd", "heart_failure"], {"spo2": 0}, {"routing": {"C1": "staff"}}),
    (["asthma"], {"spirometry": 2, "weight": 0}, {"confirmation": {"A1": True}}),
)


@pytest.fixture(scope="module")
def property_db(pg_admin_url: str, template_database: str) -> Any:
    url = create_test_database(pg_admin_url, template_database)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            yield conn
    finally:
        drop_test_database(pg_admin_url, url)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(STEP, min_size=1, max_size=8))
def test_random_insert_sequences_keep_the_cache_equal_to_a_full_load(property_db: Any, steps: list[Any]) -> None:
    db = property_db
    db.execute("TRUNCATE observation")  # each example starts with its own patients only
    db.execute("UPDATE patient SET active = false")
    pids = [make_patient(db, ["diabetes_t1", "heart_failure"]) for _ in range(4)]
    active = [True] * 4
    now = NOW
    cache = RegionCache(full_reload_s=1e9, overlap_s=0.0)
    cache.load(db, None, now)
    for what, who, offset, value in steps:
        pid = pids[who]
        if what == "cgm":
            _obs(db, pid, "glucose_cgm", "glucose_interstitial", now + 600 - offset, float(value))
        elif what == "weight":
            _obs(db, pid, "weight", "weight", now - offset, float(value))
        elif what == "unknown":
            _obs(db, pid, "blood_pressure", "mean_arterial", now - offset, float(value))
        elif what == "time":
            now += offset
        elif what == "plan":
            conditions, schedule, thresholds = PLANS[value % len(PLANS)]
            db.execute(
                "INSERT INTO care_plan (patient_id, version, valid_from, conditions, thresholds, schedule) "
                "SELECT %s, max(version) + 1, now(), %s, %s, %s FROM care_plan WHERE patient_id = %s",
                (pid, conditions, json.dumps(thresholds), json.dumps(schedule), pid),
            )
        else:
            active[who] = not active[who]
            db.execute("UPDATE patient SET active = %s WHERE id = %s", (active[who], pid))
        region = cache.load(db, None, now)
        assert cache.last is not None
        assert not cache.last.full
        assert_same_region(region, load_region(db, None, now))
