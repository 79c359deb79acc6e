"""Each gateway's retained config: allowed devices, measurement schedule, display limits.

The platform owns what a gateway is told; this module builds it from the database (the
gateway's ``device`` rows, the assigned patient's current care plan) and keeps the
retained ``egenmon/v1/gw/{id}/config`` message current. ``ConfigSync.round`` runs in the
feedback publisher's thread (one MQTT connection per alerting process):

* every ``config_poll_s`` a cheap watermark query (max ids of ``care_plan``,
  ``gateway_assignment``, ``device``, and assignments that ended since the last poll)
  names the gateways whose inputs changed; only those are rebuilt;
* every ``config_reconcile_s`` every gateway is rebuilt (patients deactivated, device
  models renamed, a commit that landed behind the watermark, new gateways);
* a config is published (QoS 1, retained) only when its hash differs from the one in
  ``gateway_config_state``, which is written after the broker's PUBACK; so a restart
  republishes nothing that is already there;
* when the broker does not know our persistent session (CONNACK ``session_present`` = 0:
  the first start, a broker that lost its state, or alerting away longer than the session
  expiry) every config is republished regardless of the stored hashes, since the
  broker's retained messages may be gone with the session.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb

from alerting import metrics
from alerting.rules import REGISTRY
from alerting.rules.framework import CAPILLARY, DIASTOLIC, SPO2, SYSTOLIC
from device_profiles.messages import AllowedDevice, DisplayLimit, GatewayConfig, ScheduledMeasurement
from device_profiles.vocabulary import Kind
from device_profiles.wire import config_topic

log = logging.getLogger(__name__)

# The upper end of the glucose target range (time in range 3.9–10.0 mmol/L, ATTD 2019);
# a cohort-wide constant in D8 rather than a parameter, so not overridable here either.
GLUCOSE_TARGET_HIGH_MMOL_L = 10.0
HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
MAX_DEVICES = 64
MAX_SCHEDULE = 32
PUBLISH_CHUNK = 500


@dataclass(frozen=True)
class _Limit:
    component: str
    level: Literal["yellow", "red"]
    op: Literal["lt", "ge", "gt"]
    unit: str
    rule: str | None  # None: the constant ``default``
    param: str | None
    default: float | None = None


# Display limits: the rule parameter each comes from, after care-plan overrides.
# The operator is the rule's own comparison (H1/H3 ≥, D4 and C1 <, D7 >).
_LIMITS = (
    _Limit(SYSTOLIC, "yellow", "ge", "mmHg", "H1", "systolic_mmhg"),
    _Limit(SYSTOLIC, "red", "ge", "mmHg", "H3", "systolic_mmhg"),
    _Limit(SYSTOLIC, "red", "lt", "mmHg", "H5", "below_mmhg"),
    _Limit(DIASTOLIC, "yellow", "ge", "mmHg", "H1", "diastolic_mmhg"),
    _Limit(DIASTOLIC, "red", "ge", "mmHg", "H3", "diastolic_mmhg"),
    _Limit(CAPILLARY, "red", "lt", "mmol/L", "D4", "medium_below_mmol_l"),
    _Limit(CAPILLARY, "yellow", "gt", "mmol/L", None, None, GLUCOSE_TARGET_HIGH_MMOL_L),
    _Limit(CAPILLARY, "red", "gt", "mmol/L", "D7", "threshold_mmol_l"),
)


def _param(thresholds: Mapping[str, Any], rule: str, name: str) -> float:
    over = thresholds.get(rule)
    if isinstance(over, Mapping):
        v = over.get(name)
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            return float(v)
    return float(REGISTRY[rule].params[name])


def display_limits(thresholds: Mapping[str, Any], *, hypercapnic: bool) -> list[DisplayLimit]:
    """The patient's display limits: rule defaults with the care plan's overrides applied.

    SpO2 follows C1: yellow below 92 % (88 % on a hypercapnic target), red below 88 %
    (85 %, C1's critical level, on a hypercapnic target, where 88 % is already yellow).
    """
    out = [
        DisplayLimit(
            component=lim.component,
            level=lim.level,
            op=lim.op,
            unit=lim.unit,
            value=_param(thresholds, lim.rule, lim.param) if lim.rule and lim.param else float(lim.default or 0.0),
        )
        for lim in _LIMITS
    ]
    yellow = "medium_below_pct_hypercapnic" if hypercapnic else "medium_below_pct"
    red = "critical_below_pct" if hypercapnic else "high_below_pct"
    out.append(DisplayLimit(component=SPO2, level="yellow", op="lt", unit="%", value=_param(thresholds, "C1", yellow)))
    out.append(DisplayLimit(component=SPO2, level="red", op="lt", unit="%", value=_param(thresholds, "C1", red)))
    return out


def config_schedule(schedule: Any) -> list[ScheduledMeasurement]:
    """The care plan's schedule as the gateway's: kinds with measurements, and their times.

    Accepts ``{"weight": 1}``, ``{"weight": {"per_day": 1, "times_local": ["07:30"]}}`` and
    ``{"weight": {"times_local": [...]}}``. Times come only from the care plan (none are
    invented for a bare ``per_day``); malformed times are dropped. CGM is continuous and
    has no times, so it is left out.
    """
    if not isinstance(schedule, Mapping):
        return []
    out: list[ScheduledMeasurement] = []
    for kind, spec in sorted(schedule.items()):
        if kind == Kind.GLUCOSE_CGM.value:
            continue
        per_day: float = 0.0
        times: list[str] = []
        timing: dict[str, int] = {}
        if isinstance(spec, int | float) and not isinstance(spec, bool):
            per_day = float(spec)
        elif isinstance(spec, Mapping):
            raw = spec.get("per_day")
            per_day = float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else 0.0
            tl = spec.get("times_local")
            if isinstance(tl, list):
                times = sorted({t for t in tl if isinstance(t, str) and HHMM.match(t)})
            # The care plan's reminder timing for this kind, when it sets one.
            for name, top in (("remind_after_min", 1440), ("escalate_after_min", 2880)):
                v = spec.get(name)
                if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= top:
                    timing[name] = v
        if per_day > 0 or times:
            out.append(ScheduledMeasurement(kind=str(kind)[:64], times_local=times, **timing))
    return out[:MAX_SCHEDULE]


def with_version(cfg: GatewayConfig) -> GatewayConfig:
    """The config with ``version`` = a hash of everything else in it."""
    body = cfg.model_dump_json(by_alias=True, exclude={"version"})
    return cfg.model_copy(update={"version": hashlib.sha256(body.encode()).hexdigest()[:16]})


CONFIG_SQL = """
SELECT g.id, p.active, cp.thresholds, cp.schedule, cp.spo2_target,
       coalesce((SELECT json_agg(json_build_object('address', d.address, 'model', d.model) ORDER BY d.address)
                 FROM device d WHERE d.gateway_id = g.id), '[]'::json)
FROM gateway g
LEFT JOIN gateway_assignment ga ON ga.gateway_id = g.id AND ga.valid @> now()
LEFT JOIN patient p ON p.id = ga.patient_id
LEFT JOIN LATERAL (
    SELECT c.thresholds, c.schedule, c.spo2_target FROM care_plan c
    WHERE c.patient_id = ga.patient_id ORDER BY c.version DESC LIMIT 1
) cp ON true
{where}
ORDER BY g.id
"""


def build_configs(conn: psycopg.Connection[Any], gateway_ids: Sequence[str] | None = None) -> dict[str, GatewayConfig]:
    """The config each gateway should have now (None: every gateway).

    A gateway without an assigned, active patient gets its devices only: no schedule and
    no limits (nobody to remind, nobody's limits to show).
    """
    if gateway_ids is None:
        rows = conn.execute(CONFIG_SQL.format(where="")).fetchall()
    else:
        rows = conn.execute(CONFIG_SQL.format(where="WHERE g.id = ANY(%s)"), (list(gateway_ids),)).fetchall()
    out: dict[str, GatewayConfig] = {}
    for gw, active, thresholds, schedule, spo2_target, devices in rows:
        allowed = [AllowedDevice(address=d["address"], model=d["model"]) for d in devices[:MAX_DEVICES]]
        if active:
            th = thresholds if isinstance(thresholds, Mapping) else {}
            cfg = GatewayConfig(
                allowed_devices=allowed,
                schedule=config_schedule(schedule),
                limits=display_limits(th, hypercapnic=spo2_target == "hypercapnic"),
            )
        else:
            cfg = GatewayConfig(allowed_devices=allowed)
        out[gw] = with_version(cfg)
    return out


# Publishes (topic, payload) pairs retained at QoS 1; True per pair the broker acknowledged.
PublishMany = Callable[[Sequence[tuple[str, bytes]]], list[bool]]

MARKS_SQL = """
SELECT (SELECT coalesce(max(id), 0) FROM care_plan),
       (SELECT coalesce(max(id), 0) FROM gateway_assignment),
       (SELECT coalesce(max(id), 0) FROM device),
       now()
"""

CHANGED_SQL = """
SELECT ga.gateway_id FROM care_plan c
    JOIN gateway_assignment ga ON ga.patient_id = c.patient_id AND ga.valid @> now()
    WHERE c.id > %(care_plan)s
UNION
SELECT gateway_id FROM gateway_assignment
    WHERE id > %(assignment)s OR (upper(valid) > %(since)s AND upper(valid) <= now())
UNION
SELECT gateway_id FROM device WHERE id > %(device)s
"""


class ConfigSync:
    """Keeps the retained configs current; ``round`` is called from the publisher's loop."""

    def __init__(self, poll_s: float, reconcile_s: float) -> None:
        self.poll_s = poll_s
        self.reconcile_s = reconcile_s
        self._marks: dict[str, Any] | None = None
        self._last_poll = -math.inf
        self._last_reconcile = -math.inf
        self._republish_all = False  # set by the connection when the broker lacks our session
        self._retry: set[str] = set()

    def request_republish_all(self) -> None:
        """The broker may have lost its retained messages: publish every config again."""
        self._republish_all = True

    def due(self, now: float | None = None) -> bool:
        t = time.monotonic() if now is None else now
        return self._republish_all or t - self._last_poll >= self.poll_s

    def _new_marks(self, conn: psycopg.Connection[Any]) -> dict[str, Any]:
        row = conn.execute(MARKS_SQL).fetchone()
        assert row is not None
        return {"care_plan": row[0], "assignment": row[1], "device": row[2], "since": row[3]}

    def round(self, conn: psycopg.Connection[Any], publish_many: PublishMany, now: float | None = None) -> int:
        """Publish the configs that changed (or all, when due); returns how many the broker took."""
        t = time.monotonic() if now is None else now
        self._last_poll = t
        force = self._republish_all
        marks = self._new_marks(conn)
        ids: set[str] | None
        if force or self._marks is None or t - self._last_reconcile >= self.reconcile_s:
            ids = None
            self._last_reconcile = t
        else:
            ids = {r[0] for r in conn.execute(CHANGED_SQL, self._marks)} | self._retry
        self._marks = marks
        if ids is not None and not ids:
            return 0
        configs = build_configs(conn, None if ids is None else sorted(ids))
        if ids is None:
            stored = dict(conn.execute("SELECT gateway_id, hash FROM gateway_config_state").fetchall())
        else:
            stored = dict(
                conn.execute(
                    "SELECT gateway_id, hash FROM gateway_config_state WHERE gateway_id = ANY(%s)", (list(configs),)
                ).fetchall()
            )
        todo = [(gw, cfg) for gw, cfg in configs.items() if force or stored.get(gw) != cfg.version]
        sent = 0
        failed: set[str] = set()
        for k in range(0, len(todo), PUBLISH_CHUNK):
            chunk = todo[k : k + PUBLISH_CHUNK]
            payloads = [cfg.model_dump_json(by_alias=True).encode() for _, cfg in chunk]
            oks = publish_many([(config_topic(gw), p) for (gw, _), p in zip(chunk, payloads, strict=True)])
            done = [
                (gw, cfg.version, Jsonb(cfg.model_dump(mode="json", by_alias=True)))
                for (gw, cfg), ok in zip(chunk, oks, strict=True)
                if ok
            ]
            failed.update(gw for (gw, _), ok in zip(chunk, oks, strict=True) if not ok)
            if done:
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO gateway_config_state (gateway_id, hash, config, published_at) "
                        "VALUES (%s, %s, %s, now()) ON CONFLICT (gateway_id) DO UPDATE SET "
                        "hash = EXCLUDED.hash, config = EXCLUDED.config, published_at = EXCLUDED.published_at",
                        done,
                    )
            sent += len(done)
            if len(done) < len(chunk):
                failed.update(gw for gw, _ in todo[k + PUBLISH_CHUNK :])
                break  # the broker is away: the rest wait for the next round
        self._retry = failed
        # A forced round that did not get everything out is forced again next time.
        self._republish_all = force and bool(failed)
        if sent:
            metrics.GATEWAY_CONFIGS.inc(sent)
            log.info("gateway configs published count=%d forced=%s", sent, force)
        return sent
