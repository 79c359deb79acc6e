"""The sweep's region loader gives, chunk by chunk, exactly what the per-patient loader gives."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import psycopg

from alerting.load import load_cohort, load_dataset, load_region
from alerting.series import SEC_PER_DAY, SEC_PER_MIN, Dataset, Series
from tests.alerting.dbdata import add_observation, make_patient

NOW = 1_780_000_000.0


def _same(a: Dataset, b: Dataset) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        assert np.array_equal(a[key].pat, b[key].pat), key
        assert np.array_equal(a[key].t, b[key].t), key  # bit for bit: the same doubles
        assert np.array_equal(a[key].v, b[key].v), key


def _seed(db: psycopg.Connection[Any]) -> list[str]:
    rng = random.Random(5)
    pids = []
    for i in range(7):
        pid = make_patient(db, ["diabetes_t1", "heart_failure"] if i % 2 else ["copd"], schedule={"weight": 1})
        pids.append(pid)
        rows = []
        for d in range(31):  # beyond the 29-day grid at the far end
            at = NOW - d * SEC_PER_DAY - rng.uniform(0, 3600) - 0.123456
            rows.append(("weight", "weight", at, 80 + rng.gauss(0, 1), None, "valid"))
            rows.append(("spo2", "spo2", at + 60, 93.0, None, "flagged"))
            rows.append(("spo2", "spo2", at + 120, 70.0, None, "rejected"))  # never loaded
            rows.append(("spo2", "perfusion_index", at + 60, 3.1, None, "valid"))  # no rule reads it
        for k in range(16 * 24):  # CGM hourly for 16 days: the loader keeps 14.5
            at = NOW - k * 3600.0 - 0.5
            censored = "low" if k % 50 == 0 else "high" if k % 77 == 0 else None
            rows.append(("glucose_cgm", "glucose_interstitial", at, None if censored else 3 + k % 9, censored, "valid"))
        rows.append(("weight", "weight", NOW + 60, 99.0, None, "valid"))  # after now: not loaded
        # Two readings with the same time (a device re-read): the lower one is kept.
        rows.append(("weight", "weight", NOW - 5 * SEC_PER_MIN, 81.5, None, "valid"))
        rows.append(("weight", "weight", NOW - 5 * SEC_PER_MIN, 81.0, None, "valid"))
        # Late arrivals: stored in random order, so the heap is not in time order.
        rng.shuffle(rows)
        for kind, comp, at, value, censored, status in rows:
            add_observation(db, pid, kind, comp, at, value, censored=censored, status=status)
    return pids


def test_region_chunks_equal_the_per_patient_loader(db: psycopg.Connection[Any]) -> None:
    pids = _seed(db)
    for block in (3, 100):  # several passes over the window, and one
        region = load_region(db, None, NOW, block=block)
        assert region.cohort.n == len(pids)
        assert sum(len(s) for s in region.data.values()) > 0
        for lo in range(0, region.cohort.n, 2):
            cohort, data = region.chunk(lo, lo + 2)
            direct = load_cohort(db, cohort.patient_ids)
            assert direct.patient_ids == cohort.patient_ids
            assert np.array_equal(direct.has("copd"), cohort.has("copd"))
            assert np.array_equal(direct.expects("weight"), cohort.expects("weight"))
            _same(data, load_dataset(db, direct, NOW))
    region = load_region(db, None, NOW)
    assert "spo2.perfusion_index" in region.data  # read by no rule, still present for triage
    cgm = region.data["glucose_cgm.glucose_interstitial"]
    assert cgm.t.min() > NOW - 14.5 * SEC_PER_DAY
    assert np.isneginf(cgm.v).any()
    assert np.isposinf(cgm.v).any()
    weight = region.data["weight.weight"]
    assert weight.t.max() <= NOW
    assert weight.t.min() > NOW - 30 * SEC_PER_DAY
    assert 81.5 not in weight.v
    assert 70.0 not in region.data["spo2.spo2"].v


def test_region_of_some_patients(db: psycopg.Connection[Any]) -> None:
    pids = _seed(db)
    some = sorted(pids)[1:4]
    region = load_region(db, some, NOW, block=2)
    assert region.cohort.patient_ids == some
    _same(region.data, load_dataset(db, load_cohort(db, some), NOW))


def test_series_build_sorts_only_what_is_out_of_order() -> None:
    rng = np.random.default_rng(3)
    n = 5000
    pat = np.sort(rng.integers(0, 40, n))
    t = np.round(rng.uniform(0, 1000, n))  # many equal times: duplicates to drop
    v = rng.integers(0, 5, n).astype(float)
    for case in ("sorted", "late arrivals", "shuffled"):
        if case == "sorted":
            order = np.lexsort((v, t, pat))
        elif case == "late arrivals":
            order = np.lexsort((v, t, pat))
            within = np.flatnonzero(pat[order][1:] == pat[order][:-1])  # patients stay grouped
            for i in rng.choice(within, 30, replace=False):  # a few rows stored late
                order[i], order[i + 1] = order[i + 1], order[i]
        else:
            order = rng.permutation(n)
        got = Series.build(pat[order], t[order], v[order])
        ref = np.lexsort((v, t, pat))
        p, tt, vv = pat[ref], t[ref], v[ref]
        first = np.r_[True, (p[1:] != p[:-1]) | (tt[1:] != tt[:-1])]
        assert np.array_equal(got.pat, p[first]), case
        assert np.array_equal(got.t, tt[first]), case
        assert np.array_equal(got.v, vv[first]), case
