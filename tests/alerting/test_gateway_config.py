"""Retained gateway configs: built from the database, kept current over a real broker."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from alerting.feedback import FeedbackPublisher
from alerting.gateway_config import build_configs, config_schedule, display_limits, with_version
from alerting.settings import AlertingSettings
from device_profiles.messages import DisplayLimit, GatewayConfig, display_level
from device_profiles.wire import config_topic
from gateway.outbox import Outbox
from gateway.publisher import BrokerConfig, Publisher
from tests.alerting.test_feedback import wait_for
from tests.ingest.helpers import seed_patient

SCHEDULE = {"blood_pressure": {"per_day": 2, "times_local": ["20:00", "08:00", "25:00"]}, "glucose_cgm": 288}


def limit(limits: list[DisplayLimit], component: str, level: str, op: str) -> float:
    [v] = [x.value for x in limits if x.component == component and x.level == level and x.op == op]
    return v


def patient_with_kit(db: psycopg.Connection[Any], thresholds: dict[str, Any] | None = None) -> tuple[str, str]:
    seed = seed_patient(db)
    db.execute(
        "INSERT INTO care_plan (patient_id, version, conditions, thresholds, schedule) VALUES (%s, 1, %s, %s, %s)",
        (seed.patient_id, ["hypertension"], json.dumps(thresholds or {}), json.dumps(SCHEDULE)),
    )
    db.execute(
        "INSERT INTO device (gateway_id, address, model, kind) VALUES (%s, 'A0:B1:C2:D3:E4:F5', 'BP7000', "
        "'blood_pressure')",
        (seed.gateway_id,),
    )
    return str(seed.patient_id), seed.gateway_id


def test_display_limits_are_the_rule_defaults_with_care_plan_overrides() -> None:
    std = display_limits({}, hypercapnic=False)
    assert limit(std, "blood_pressure.systolic", "yellow", "ge") == 135
    assert limit(std, "blood_pressure.diastolic", "yellow", "ge") == 85
    assert limit(std, "blood_pressure.systolic", "red", "ge") == 180
    assert limit(std, "blood_pressure.diastolic", "red", "ge") == 110
    assert limit(std, "glucose_capillary.glucose", "red", "lt") == 3.9
    assert limit(std, "glucose_capillary.glucose", "yellow", "gt") == 10.0
    assert limit(std, "glucose_capillary.glucose", "red", "gt") == 13.9
    assert limit(std, "spo2.spo2", "yellow", "lt") == 92
    assert limit(std, "spo2.spo2", "red", "lt") == 88
    hyp = display_limits({"C1": {"critical_below_pct": 84}}, hypercapnic=True)
    assert limit(hyp, "spo2.spo2", "yellow", "lt") == 88
    assert limit(hyp, "spo2.spo2", "red", "lt") == 84
    over = display_limits(
        {"H1": {"systolic_mmhg": 140, "diastolic_mmhg": True}, "D7": {"threshold_mmol_l": 15}}, hypercapnic=False
    )
    assert limit(over, "blood_pressure.systolic", "yellow", "ge") == 140
    assert limit(over, "blood_pressure.diastolic", "yellow", "ge") == 85  # a boolean is no number
    assert limit(over, "glucose_capillary.glucose", "red", "gt") == 15
    # The gateway's reading of them: on the threshold is the rule's side of it.
    assert display_level(std, "blood_pressure.systolic", 134) == "green"
    assert display_level(std, "blood_pressure.systolic", 135) == "yellow"
    assert display_level(std, "blood_pressure.systolic", 180) == "red"
    assert display_level(std, "blood_pressure.systolic", 89) == "red"
    assert display_level(std, "glucose_capillary.glucose", 10.0) == "green"
    assert display_level(std, "glucose_capillary.glucose", 10.1) == "yellow"
    assert display_level(std, "glucose_capillary.glucose", 3.8) == "red"
    assert display_level(std, "spo2.spo2", 91) == "yellow"
    assert display_level(std, "weight.weight", 200) == "green"


def test_schedule_keeps_care_plan_times_and_leaves_out_cgm() -> None:
    sched = config_schedule(SCHEDULE | {"weight": 1, "spirometry": {"per_day": 0}, "symptoms": "x"})
    assert [(s.kind, s.times_local) for s in sched] == [("blood_pressure", ["08:00", "20:00"]), ("weight", [])]
    assert config_schedule(None) == []
    # The care plan's reminder timing for a kind travels with it; nonsense is dropped.
    timed = config_schedule(
        {"weight": {"per_day": 1, "times_local": ["07:00"], "remind_after_min": 20, "escalate_after_min": 0}}
        | {"spo2": {"per_day": 1, "times_local": ["09:00"], "remind_after_min": -5, "escalate_after_min": True}}
    )
    assert [(s.kind, s.remind_after_min, s.escalate_after_min) for s in timed] == [
        ("spo2", None, None),
        ("weight", 20, 0),
    ]


def test_build_configs_and_version(db: psycopg.Connection[Any]) -> None:
    pid, gw = patient_with_kit(db)
    idle = seed_patient(db).gateway_id
    db.execute("UPDATE gateway_assignment SET valid = tstzrange(lower(valid), now()) WHERE gateway_id = %s", (idle,))
    cfgs = build_configs(db)
    cfg = cfgs[gw]
    assert [d.address for d in cfg.allowed_devices] == ["A0:B1:C2:D3:E4:F5"]
    assert cfg.schedule[0].times_local == ["08:00", "20:00"]
    assert cfg.version == with_version(cfg.model_copy(update={"version": None})).version
    # A kit with nobody assigned is told its devices only.
    assert cfgs[idle].schedule == []
    assert cfgs[idle].limits == []
    # The version moves with the content and only with it.
    assert build_configs(db, [gw])[gw].version == cfg.version
    db.execute(
        "INSERT INTO care_plan (patient_id, version, conditions, thresholds, schedule) VALUES (%s, 2, %s, %s, %s)",
        (pid, ["hypertension"], json.dumps({"H3": {"systolic_mmhg": 170}}), json.dumps(SCHEDULE)),
    )
    assert build_configs(db, [gw])[gw].version != cfg.version


def _state(db: psycopg.Connection[Any], gw: str) -> tuple[str, Any] | None:
    row = db.execute("SELECT hash, published_at FROM gateway_config_state WHERE gateway_id = %s", (gw,)).fetchone()
    return None if row is None else (row[0], row[1])


def _platform(
    database_url: str, mqtt_url: str, client_id: str = "egenmon-alerting"
) -> tuple[FeedbackPublisher, threading.Thread]:
    platform = FeedbackPublisher(
        AlertingSettings(
            database_url=database_url,
            mqtt_url=mqtt_url,
            mqtt_client_id=client_id,
            feedback_poll_s=0.1,
            config_poll_s=0.2,
        )
    )
    worker = threading.Thread(target=platform.run, daemon=True)
    worker.start()
    return platform, worker


def _retained(mqtt_url: str, topic: str) -> list[mqtt.MQTTMessage]:
    """What a brand-new subscriber gets on the topic."""
    got: list[mqtt.MQTTMessage] = []
    host, port = mqtt_url.removeprefix("mqtt://").split(":")
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.on_message = lambda _c, _u, m: got.append(m)
    c.connect(host, int(port))
    c.subscribe(topic, qos=1)
    c.loop_start()
    try:
        wait_for(lambda: got, timeout=5)
    finally:
        c.loop_stop()
        c.disconnect()
    return got


def test_care_plan_change_republishes_the_retained_config(
    db: psycopg.Connection[Any], database_url: str, mqtt_url: str, tmp_path: Path
) -> None:
    pid, gw = patient_with_kit(db)
    received: list[GatewayConfig] = []
    gateway = Publisher(BrokerConfig(mqtt_url, gw), Outbox(tmp_path / "outbox.db"), on_config=received.append)
    gateway.start()
    platform, worker = _platform(database_url, mqtt_url)
    try:
        assert gateway.connected.wait(10)
        assert wait_for(lambda: received)
        first = received[-1]
        assert limit(first.limits, "blood_pressure.systolic", "yellow", "ge") == 135
        assert [d.address for d in first.allowed_devices] == ["A0:B1:C2:D3:E4:F5"]
        assert wait_for(lambda: _state(db, gw) is not None)
        assert _state(db, gw)[0] == first.version  # type: ignore[index]
        # The physician lowers the patient's home BP target: a new care-plan version.
        db.execute(
            "INSERT INTO care_plan (patient_id, version, conditions, thresholds, schedule) VALUES (%s, 2, %s, %s, %s)",
            (pid, ["hypertension"], json.dumps({"H1": {"systolic_mmhg": 130}}), json.dumps(SCHEDULE)),
        )
        changed_at = time.monotonic()
        assert wait_for(lambda: received[-1].version != first.version, timeout=5)
        assert time.monotonic() - changed_at < 3
        assert limit(received[-1].limits, "blood_pressure.systolic", "yellow", "ge") == 130
        # A gateway connecting later (or after a restart) gets it retained.
        [msg] = _retained(mqtt_url, config_topic(gw))
        assert msg.retain
        late = GatewayConfig.model_validate_json(msg.payload)
        assert late.version == received[-1].version
        assert _state(db, gw)[0] == late.version  # type: ignore[index]
        # Nothing else changed: no further publishes.
        n = len(received)
        time.sleep(1.0)
        assert len(received) == n
    finally:
        platform.stop()
        worker.join(timeout=10)
    # A restart with the broker still holding our session republishes nothing.
    before = _state(db, gw)
    platform, worker = _platform(database_url, mqtt_url)
    try:
        time.sleep(1.5)
        assert _state(db, gw) == before
        assert len(received) == n
    finally:
        platform.stop()
        worker.join(timeout=10)
    # A broker without our session (lost state, or a new one) gets every config again.
    platform, worker = _platform(database_url, mqtt_url, client_id="egenmon-alerting-2")
    try:
        assert wait_for(lambda: _state(db, gw) != before)
        assert wait_for(lambda: len(received) == n + 1)
        assert received[-1].version == before[0]  # type: ignore[index]
    finally:
        platform.stop()
        worker.join(timeout=10)
        gateway.stop()


def test_new_device_and_ended_assignment_reach_the_gateway(
    db: psycopg.Connection[Any], database_url: str, mqtt_url: str, tmp_path: Path
) -> None:
    _, gw = patient_with_kit(db)
    received: list[GatewayConfig] = []
    gateway = Publisher(BrokerConfig(mqtt_url, gw), Outbox(tmp_path / "outbox.db"), on_config=received.append)
    gateway.start()
    platform, worker = _platform(database_url, mqtt_url)
    try:
        assert gateway.connected.wait(10)
        assert wait_for(lambda: received)
        db.execute(
            "INSERT INTO device (gateway_id, address, model, kind) VALUES (%s, '11:22:33:44:55:66', 'Scale', 'weight')",
            (gw,),
        )
        assert wait_for(lambda: len(received[-1].allowed_devices) == 2, timeout=5)
        # The patient leaves the programme: the kit keeps its devices, loses schedule and limits.
        db.execute("UPDATE gateway_assignment SET valid = tstzrange(lower(valid), now()) WHERE gateway_id = %s", (gw,))
        assert wait_for(lambda: received[-1].schedule == [] and received[-1].limits == [], timeout=5)
        assert len(received[-1].allowed_devices) == 2
    finally:
        platform.stop()
        worker.join(timeout=10)
        gateway.stop()
