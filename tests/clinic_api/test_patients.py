"""Patient list, detail, observations with downsampling, summaries, care-plan history."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np
import psycopg
import pytest

from clinic_api.downsample import bucket
from clinic_api.queries import series
from tests.clinic_api.conftest import NURSE, PHYSICIAN, Seed, TestClient

Auth = Callable[[str], dict[str, str]]


# These tests only read (or write where no other test looks): one seeded database per
# module instead of one per test, which costs ~1 s each on this machine.
@pytest.fixture
def client(shared_client: TestClient) -> TestClient:
    return shared_client


@pytest.fixture
def auth(shared_auth: Auth) -> Auth:
    return shared_auth


@pytest.fixture
def seed(shared_seed: Seed) -> Seed:
    return shared_seed


def test_list_has_status_columns(client: TestClient, auth: Auth, seed: Seed) -> None:
    rows = {r["pseudonym"]: r for r in client.get("/api/v1/patients", headers=auth(NURSE)).json()}
    hf = rows["P-DEMO0001"]
    assert hf["open_alerts"] == 2
    assert hf["top_severity"] == "medium"
    assert hf["conditions"] == ["heart_failure", "hypertension"]
    # Weight daily + BP twice daily were all taken: full adherence on the schedule.
    assert hf["adherence_7d_pct"] == 100.0
    assert dt.datetime.fromisoformat(hf["last_measurement_at"]) <= seed.now
    assert rows["P-DEMO0002"]["adherence_7d_pct"] is None  # no schedule in the plan


def test_detail_has_care_plan_gateway_devices_alerts(client: TestClient, auth: Auth, seed: Seed) -> None:
    p = client.get(f"/api/v1/patients/{seed.patients['P-DEMO0001']}", headers=auth(NURSE)).json()
    assert p["care_plan"]["dry_weight_kg"] == 82.0
    assert p["gateway"]["id"] == "gw-demo-001"
    assert {d["kind"] for d in p["devices"]} == {"blood_pressure", "weight"}
    assert {a["rule_id"] for a in p["alerts"]} == {"HF1", "H1"}
    assert "personnummer" not in p


def test_observations_raw_and_downsampled(client: TestClient, auth: Auth, seed: Seed) -> None:
    pid = seed.patients["P-DEMO0002"]
    start = (seed.now - dt.timedelta(days=2)).isoformat()
    end = seed.now.isoformat()
    params = {"component": "glucose_interstitial", "start": start, "end": end, "max_points": 5000}
    raw = client.get(f"/api/v1/patients/{pid}/observations", headers=auth(NURSE), params=params).json()
    assert raw["downsampled"] is False
    assert raw["unit"] == "mmol/L"
    n = len(raw["points"])
    assert 90 <= n <= 97  # every 30 min for two days
    params["max_points"] = 10
    ds = client.get(f"/api/v1/patients/{pid}/observations", headers=auth(NURSE), params=params).json()
    assert ds["downsampled"] is True
    assert len(ds["points"]) <= 10
    assert sum(p["n"] for p in ds["points"]) == n
    assert min(p["min"] for p in ds["points"]) == min(p["mean"] for p in raw["points"])
    assert max(p["max"] for p in ds["points"]) == max(p["mean"] for p in raw["points"])
    # The database-side bucketing agrees with the numpy reference on the same readings.
    t = np.array([dt.datetime.fromisoformat(p["t"]).timestamp() for p in raw["points"]])
    v = np.array([p["mean"] for p in raw["points"]])
    ref = bucket(t, v, dt.datetime.fromisoformat(start).timestamp(), dt.datetime.fromisoformat(end).timestamp(), 10)
    assert [p["n"] for p in ds["points"]] == ref.n.tolist()
    assert [p["min"] for p in ds["points"]] == ref.min.tolist()
    assert [p["max"] for p in ds["points"]] == ref.max.tolist()
    assert [p["mean"] for p in ds["points"]] == pytest.approx(ref.mean.tolist())
    got_t = [dt.datetime.fromisoformat(p["t"]).timestamp() for p in ds["points"]]
    assert got_t == pytest.approx(ref.t_s.tolist(), abs=1e-3)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"component": "blood_sugar"}, "unknown component"),
        ({"component": "weight", "start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "before end"),
        ({"component": "weight", "start": "2020-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "400 days"),
        ({"component": "weight", "start": "2026-01-01T00:00:00", "end": "2026-01-02T00:00:00"}, "timezone"),
        ({"component": "weight", "max_points": 1}, "greater than or equal"),
        ({"component": "weight", "start": "yesterday"}, "datetime"),
        ({"component": "weight", "end": "0001-01-01T00:00:00Z"}, "end must lie between 1970-01-01 and 2200-01-01"),
        ({"component": "weight", "start": "1969-12-31T23:59:59Z"}, "start must lie between"),
        ({"component": "weight", "start": "9999-12-31T00:00:00Z", "end": "9999-12-31T23:59:59-14:00"}, "lie between"),
    ],
)
def test_observations_bad_input(
    client: TestClient, auth: Auth, seed: Seed, params: dict[str, object], message: str
) -> None:
    r = client.get(f"/api/v1/patients/{seed.patients['P-DEMO0001']}/observations", headers=auth(NURSE), params=params)
    assert r.status_code == 422
    assert message in r.text


def test_summaries(client: TestClient, auth: Auth, seed: Seed) -> None:
    s = client.get(f"/api/v1/patients/{seed.patients['P-DEMO0001']}/summary", headers=auth(NURSE)).json()
    assert s["bp_7d"]["n"] >= 12
    assert 125 < s["bp_7d"]["systolic_mean_mmhg"] < 160
    assert s["weight"]["trend_kg_per_day_14d"] > 0  # the seeded 3-day gain
    assert s["weight"]["dry_weight_kg"] == 82.0
    s2 = client.get(f"/api/v1/patients/{seed.patients['P-DEMO0002']}/summary", headers=auth(NURSE)).json()
    cgm = s2["cgm_14d"]
    parts = cgm["tbr_lt_3_9_pct"] + cgm["tir_3_9_10_pct"] + cgm["tar_gt_10_pct"]
    assert parts == pytest.approx(100, abs=0.2)
    assert cgm["gmi_mmol_mol"] == pytest.approx(12.71 + 4.70587 * cgm["mean_mmol_l"], abs=0.1)
    s3 = client.get(f"/api/v1/patients/{seed.patients['P-DEMO0003']}/summary", headers=auth(NURSE)).json()
    assert s3["pef"]["personal_best_l_min"] == 520.0
    assert s3["pef"]["latest_pct_of_best"] == pytest.approx(s3["pef"]["latest_l_min"] / 520 * 100, abs=0.1)


def test_care_plan_edit_adds_versions(client: TestClient, auth: Auth, seed: Seed) -> None:
    pid = seed.patients["P-DEMO0004"]  # MON-SYD: the physician's second unit; no other test reads its plan
    plan = {
        "conditions": ["heart_failure", "hypertension"],
        "thresholds": {"HF1": {"gain_kg": 1.5}},
        "schedule": {"weight": {"per_day": 1, "times_local": ["07:00"]}},
        "dry_weight_kg": 80.5,
        "personal_best_pef": None,
        "notes": "Torrvikt justerad efter besök",
    }
    r = client.post(f"/api/v1/patients/{pid}/care-plans", headers=auth(PHYSICIAN), json=plan)
    assert r.status_code == 201
    assert r.json()["version"] == 2
    plan["dry_weight_kg"] = 80.0
    assert client.post(f"/api/v1/patients/{pid}/care-plans", headers=auth(PHYSICIAN), json=plan).json()["version"] == 3
    assert client.post(f"/api/v1/patients/{pid}/care-plans", headers=auth(NURSE), json=plan).status_code == 404
    history = client.get(f"/api/v1/patients/{pid}/care-plans", headers=auth(PHYSICIAN)).json()
    assert [h["version"] for h in history] == [3, 2, 1]
    assert [h["dry_weight_kg"] for h in history] == [80.0, 80.5, None]
    assert history[1]["created_by_name"] == "Läkare Erik Demo"
    detail = client.get(f"/api/v1/patients/{pid}", headers=auth(PHYSICIAN)).json()
    assert detail["care_plan"]["version"] == 3
    assert detail["care_plan"]["thresholds"] == {"HF1": {"gain_kg": 1.5}}


@pytest.mark.parametrize(
    "bad",
    [
        {"conditions": ["flu"]},
        {"dry_weight_kg": 5},
        {"personal_best_pef": 2000},
        {"schedule": {"coffee": {"per_day": 1}}},
        {"schedule": {"weight": {"times_local": ["25:00"]}}},
        {"thresholds": {"not a rule": {"x": 1}}},
        {"thresholds": {"routing": {"D6": "pager"}}},
        {"thresholds": {"confirmation": {"within_min": 500}}},
        {"thresholds": {"confirmation": {"H3": "maybe"}}},
        {"spo2_target": "low"},
        {"unexpected": 1},
    ],
)
def test_care_plan_bad_input(client: TestClient, auth: Auth, seed: Seed, bad: dict[str, object]) -> None:
    r = client.post(f"/api/v1/patients/{seed.patients['P-DEMO0001']}/care-plans", headers=auth(NURSE), json=bad)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][0] == "body"


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_care_plan_refuses_numbers_that_are_not_finite(client: TestClient, auth: Auth, seed: Seed, number: str) -> None:
    body = '{"thresholds": {"D1": {"threshold_mmol_l": ' + number + "}}}"
    r = client.post(
        f"/api/v1/patients/{seed.patients['P-DEMO0001']}/care-plans",
        headers={**auth(NURSE), "content-type": "application/json"},
        content=body,
    )
    assert r.status_code == 422, r.text
    assert "finite" in r.text


def test_care_plan_routing_confirmation_and_long_rule_ids(client: TestClient, auth: Auth, seed: Seed) -> None:
    pid = seed.patients["P-DEMO0004"]
    thresholds = {
        "NEWS2": {"recent_min": 30},
        "NODATA": {"info_after_h": 48},
        "routing": {"D6": "staff"},
        "confirmation": {"within_min": 10, "H3": False},
    }
    # The gateway's reminder timing per kind travels in the schedule.
    schedule = {"weight": {"per_day": 1, "times_local": ["07:00"], "remind_after_min": 20, "escalate_after_min": 90}}
    body = {"thresholds": thresholds, "schedule": schedule, "notes": "Påminnelse efter 20 min"}
    r = client.post(f"/api/v1/patients/{pid}/care-plans", headers=auth(PHYSICIAN), json=body)
    assert r.status_code == 201, r.text
    plan = client.get(f"/api/v1/patients/{pid}", headers=auth(PHYSICIAN)).json()["care_plan"]
    assert plan["thresholds"] == thresholds
    assert plan["schedule"]["weight"]["remind_after_min"] == 20
    bad = {"schedule": {"weight": {"remind_after_min": 5000}}}
    assert client.post(f"/api/v1/patients/{pid}/care-plans", headers=auth(PHYSICIAN), json=bad).status_code == 422


def test_care_plan_form_on_the_patient_page(client: TestClient, auth: Auth, seed: Seed) -> None:
    pid = seed.patients["P-DEMO0004"]  # MON-SYD, only the physician (and Sara) see it
    before = client.get(f"/api/v1/patients/{pid}", headers=auth(PHYSICIAN)).json()["care_plan"]
    form = {"dry_weight_kg": "71,5", "personal_best_pef": "", "spo2_target": "hypercapnic", "reason": "Justerad"}
    r = client.post(f"/ui/patients/{pid}/care-plan", headers=auth(PHYSICIAN), data=form, follow_redirects=False)
    assert r.status_code == 303
    plan = client.get(f"/api/v1/patients/{pid}", headers=auth(PHYSICIAN)).json()["care_plan"]
    assert plan["dry_weight_kg"] == 71.5
    assert plan["spo2_target"] == "hypercapnic"
    assert plan["conditions"] == before["conditions"]  # carried over
    assert plan["schedule"] == before["schedule"]
    assert plan["version"] == before["version"] + 1
    bad = client.post(f"/ui/patients/{pid}/care-plan", headers=auth(PHYSICIAN), data={**form, "dry_weight_kg": "5"})
    assert bad.status_code == 422
    denied = client.post(f"/ui/patients/{pid}/care-plan", headers=auth(NURSE), data=form)
    assert denied.status_code == 404


def test_series_times_are_the_stored_instants_exactly(seed: Seed) -> None:
    """The packed series' float seconds equal datetime.timestamp() of the stored instants:
    the numpy bucketing must see a reading on a bucket boundary where the reference does."""
    pid = seed.patients["P-DEMO0002"]
    # Instants whose seconds, divided first and offset by the epoch after, were a bit off.
    instants = [
        dt.datetime(2026, 12, 2, 1, 31, 16, 720977, tzinfo=dt.UTC) - dt.timedelta(minutes=30 * j) for j in (0, 1, 2)
    ]
    with psycopg.connect(seed.url, autocommit=True) as conn:
        for at in instants:
            conn.execute(
                "INSERT INTO observation (reading_id, component, measured_at, patient_id, gateway_id,"
                " device_address, kind, value, unit, received_at)"
                " VALUES (gen_random_uuid(), 'temperature', %s, %s, 'gw-t', 'AA', 'temperature', 36.6, 'Cel', now())",
                (at, pid),
            )
        got = series(
            conn,
            pid,
            "temperature",
            start=instants[-1] - dt.timedelta(milliseconds=1),
            end=instants[0] + dt.timedelta(milliseconds=1),
            max_points=100,
        )
    assert got.t_s.tolist() == [at.timestamp() for at in reversed(instants)]
