"""Fast scoring of the real alerting engine: no broker, readings stored in-process.

    python benchmarks/bench_score.py --patients 200 --days 60
    python benchmarks/bench_score.py --patients 400 --days 60 --json > score.json

A throwaway PostgreSQL is started and migrated, the cohort seeded (``simulators.seed``),
and every simulated reading stored by ingest's own ``prepare`` and ``store`` functions
(the same parsing, dead-lettering and COPY as the ingest worker, without MQTT). Then
``alerting.service.evaluate_and_store`` is replayed at ``--step-hours`` historical
steps from day 1 to the end. Between steps, staff (a) resolve alerts the platform
suggests resolving, as ``bench_fleet.py --score`` does, and (b) acknowledge open alerts
shown to them, as a nurse working the queue would (so severity escalation and
re-notification behave as in real use). Finally the alerts are scored with
``simulators.scoring.score_staff`` (staff-shown alerts only; definitions in
simulators/README.md) and with the per-rule table of ``score``.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataclasses import replace
from typing import Any

import numpy as np
import psycopg

from alerting import events
from alerting.service import evaluate_and_store
from deploy.localstack import LocalPostgres
from device_profiles.vocabulary import WEIGHT_MAX_DAILY_CHANGE_KG, Kind
from device_profiles.wire import status_topic
from ingest.pipeline import Incoming, prepare
from ingest.store import setup_connection, store
from schema.migrate import migrate
from simulators.baseline import baseline_alerts
from simulators.cohort import Cohort, CohortConfig, generate_cohort
from simulators.fleet import GatewayState, batches, gateway_readings, kind_readings, status_message
from simulators.repeats import DEFAULT_COMPLIANCE, repeat_reading
from simulators.scoring import (
    format_rows,
    format_staff,
    load_alerts,
    load_patient_detections,
    load_staff_alerts,
    score,
    score_by_route,
    score_staff,
)
from simulators.seed import seed_database
from simulators.series import PatientSeries

IGNORE = frozenset({"NODATA"})  # the per-rule table: adherence, not detection
# Missing-data alerts are staff load when they reach the queue, but detect no episode.
GAP_RULES = frozenset({"NODATA", "D10", "HF9"})


def store_direct(url: str, cohort: Cohort, until: datetime, batch_size: int = 288) -> int:
    """Store the cohort's history up to ``until`` as ingest would; the readings stored."""
    lo = int(cohort.config.start.timestamp())
    hi = int(until.timestamp())
    n = 0
    now = datetime.now(UTC)
    with psycopg.connect(url) as conn:
        setup_connection(conn)
        for patient in cohort.patients:
            state = GatewayState(patient, cohort.series(patient))
            msgs = [
                Incoming(topic, payload, mid, 1, 0, now)
                for mid, (topic, payload, _) in enumerate(
                    batches(state, gateway_readings(patient, state.sim, lo, hi), batch_size)
                )
            ]
            for k in range(0, len(msgs), 20):
                result, _ = store(conn, prepare(msgs[k : k + 20]), max_weight_change_kg=WEIGHT_MAX_DAILY_CHANGE_KG)
                n += result.readings_stored
    return n


class RepeatingPatients:
    """Patients who measure again when asked (simulators/repeats.py), stored as ingest would."""

    def __init__(self, cohort: Cohort, compliance: float, seed: int) -> None:
        self.cohort = cohort
        self.clean = generate_cohort(replace(cohort.config, realism="default"))
        self.by_pseudonym = {p.pseudonym: p for p in cohort.patients}
        self.compliance = compliance
        self.rng = np.random.default_rng([seed, 99])
        self._hard: dict[str, PatientSeries] = {}
        self._clean: dict[str, PatientSeries] = {}
        self.asked = self.answered = 0

    def answer(self, conn: psycopg.Connection[Any], t: float) -> None:
        rows = conn.execute(
            "SELECT p.pseudonym, a.last_fired_at, a.evidence FROM patient_message m JOIN alert a ON a.id = m.alert_id "
            "JOIN patient p ON p.id = m.patient_id WHERE m.level = 'measure_again' AND m.created_at = to_timestamp(%s) "
            "AND a.status = 'awaiting_confirmation'",
            (t,),
        ).fetchall()
        for pseudonym, fired_at, evidence in rows:
            self.asked += 1
            if self.rng.random() >= self.compliance:
                continue  # this patient does not measure again: the window times out
            patient = self.by_pseudonym[pseudonym]
            if pseudonym not in self._hard:
                self._hard[pseudonym] = self.cohort.series(patient)
                self._clean[pseudonym] = self.clean.series(patient)
            hard, clean = self._hard[pseudonym], self._clean[pseudonym]
            trigger = fired_at.timestamp()
            rules = [r["rule"] for r in evidence.get("rules", [evidence])]
            kinds = {Kind(k.split(".")[0]) for k in events.repeat_series(rules)} & set(hard.series)
            if not kinds:
                continue
            kind = min(kinds, key=lambda k: float(np.min(np.abs(hard.series[k].t_s - trigger))))
            at = int(t) + 300  # five minutes after the message
            one = repeat_reading(hard, clean, kind, trigger, at=at, rng=self.rng)
            if one is None:
                continue
            state = GatewayState(patient, hard, seq=1_000_000 + self.answered)
            docs = kind_readings(patient, one, at, at + 3600)
            msgs = [
                Incoming(topic, payload, mid, 1, 0, datetime.now(UTC))
                for mid, (topic, payload, _) in enumerate(batches(state, docs, 10))
            ]
            store(conn, prepare(msgs), max_weight_change_kg=WEIGHT_MAX_DAILY_CHANGE_KG)
            self.answered += 1


def publish_status(conn: psycopg.Connection[Any], cohort: Cohort, t: float) -> None:
    """Every gateway's heartbeat at ``t``, stored by ingest's own path (as a real gateway's is).

    Without it the gateways look silent, and missing-data triage blames every gap on a
    gateway outage (no reminder to the patient, a technical event). The simulated gateways
    are online and hear their devices (``simulators.fleet.status_message``, as the fleet's).
    """
    at = datetime.fromtimestamp(t, UTC)
    uptime = t - cohort.config.start.timestamp()
    msgs = [
        Incoming(status_topic(p.gateway_id), status_message(p, at, uptime), k, 1, 0, at)
        for k, p in enumerate(cohort.patients)
    ]
    store(conn, prepare(msgs), max_weight_change_kg=WEIGHT_MAX_DAILY_CHANGE_KG)


def replay(
    url: str,
    cohort: Cohort,
    days: int,
    step_h: float,
    patients: RepeatingPatients | None = None,
    *,
    gateway_status: bool = True,
) -> int:
    t = cohort.config.start.timestamp() + 86_400
    end = cohort.config.start.timestamp() + days * 86_400
    steps = 0
    with psycopg.connect(url, autocommit=True) as conn:
        setup_connection(conn)
        while t <= end:
            if gateway_status:
                publish_status(conn, cohort, t)
            evaluate_and_store(conn, None, now=t, trigger="replay")
            if patients is not None:
                patients.answer(conn, t)
            conn.execute(
                "UPDATE alert SET status = 'resolved', resolved_at = to_timestamp(%s)"
                " WHERE status <> 'resolved' AND resolution_suggested_at IS NOT NULL",
                (t,),
            )
            # A nurse works the queue: open alerts shown to staff are acknowledged.
            conn.execute(
                "UPDATE alert SET status = 'acknowledged', acknowledged_at = to_timestamp(%s)"
                " WHERE status = 'open' AND route = 'staff'",
                (t,),
            )
            t += step_h * 3600
            steps += 1
    return steps


def dump_staff(url: str, path: Path) -> None:
    """Every staff-shown alert as a CSV row, for looking into where the load comes from."""
    with psycopg.connect(url) as conn, path.open("w", newline="") as out:
        w = csv.writer(out)
        w.writerow(
            ["pseudonym", "conditions", "event_type", "rule_id", "severity", "opened_at", "shown_at", "evidence"]
        )
        for row in conn.execute(
            "SELECT p.pseudonym, cp.conditions, a.event_type, a.rule_id, a.severity, a.opened_at, a.shown_to_staff_at,"
            " a.evidence FROM alert a JOIN patient p ON p.id = a.patient_id"
            " JOIN care_plan_current cp ON cp.patient_id = a.patient_id"
            " WHERE a.shown_to_staff_at IS NOT NULL ORDER BY a.opened_at"
        ):
            w.writerow([*row[:7], json.dumps(row[7], ensure_ascii=False)])


def staff_breakdown(url: str, days: int) -> list[tuple[str, str, int, float]]:
    """Staff-shown alerts per (condition, event type), with the rate per patient-month."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """
            WITH pc AS (SELECT patient_id, conditions[1] AS condition FROM care_plan_current),
                 n AS (SELECT condition, count(*) AS patients FROM pc GROUP BY 1)
            SELECT pc.condition, coalesce(a.event_type, '-'), count(a.id), n.patients
            FROM alert a JOIN pc ON pc.patient_id = a.patient_id JOIN n ON n.condition = pc.condition
            WHERE a.shown_to_staff_at IS NOT NULL
            GROUP BY 1, 2, 4 ORDER BY 1, 3 DESC
            """
        ).fetchall()
    return [(c, e, int(k), k / (p * days / 30)) for c, e, k, p in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--step-hours", type=float, default=1.0)
    parser.add_argument(
        "--hard", action=argparse.BooleanOptionalAction, default=True, help="the hard cohort (simulators/realism.py)"
    )
    parser.add_argument(
        "--compliance",
        type=float,
        default=DEFAULT_COMPLIANCE,
        help="share of patients who measure again when asked (0: nobody, every wait times out)",
    )
    parser.add_argument(
        "--gateway-status",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="publish every gateway's heartbeat before each evaluation (off: gaps look like gateway outages)",
    )
    parser.add_argument("--dump-staff", type=Path, help="write every staff alert (with its evidence) to this CSV")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="egenmon-score-"))
    base.chmod(0o755)
    pg = LocalPostgres(base / "pg", durable=False)
    t_all = time.perf_counter()
    try:
        pg.start()
        migrate(pg.url)
        cohort = generate_cohort(
            CohortConfig(args.patients, seed=args.seed, days=args.days, realism="hard" if args.hard else "default")
        )
        seed_database(pg.url, cohort)
        t0 = time.perf_counter()
        store_direct(pg.url, cohort, cohort.config.start + timedelta(days=args.days))
        with psycopg.connect(pg.url) as conn:
            row = conn.execute("SELECT count(*) FROM observation").fetchone()
        stored = int(row[0]) if row else 0
        t_store = time.perf_counter() - t0
        t0 = time.perf_counter()
        repeating = RepeatingPatients(cohort, args.compliance, args.seed)
        steps = replay(pg.url, cohort, args.days, args.step_hours, repeating, gateway_status=args.gateway_status)
        t_replay = time.perf_counter() - t0
        conditions = {p.pseudonym: p.conditions for p in cohort.patients}
        staff_alerts = load_staff_alerts(pg.url)
        if args.dump_staff:
            dump_staff(pg.url, args.dump_staff)
        staff = score_staff(staff_alerts, cohort.episodes(), conditions, args.days, not_detections=GAP_RULES)
        # Sensitivity counting the patient channel too (staff load stays the staff alerts'):
        told = load_patient_detections(pg.url, GAP_RULES)
        acted = score_staff([*staff_alerts, *told], cohort.episodes(), conditions, args.days, not_detections=GAP_RULES)
        # Each episode by the route its grade is meant to take (a level 1 low: the patient).
        routed = score_by_route(staff_alerts, told, cohort.episodes(), conditions, args.days, not_detections=GAP_RULES)
        lo = int(cohort.config.start.timestamp())
        base_alerts = baseline_alerts(((p, cohort.series(p)) for p in cohort.patients), lo, lo + args.days * 86_400)
        fixed = score_staff(base_alerts, cohort.episodes(), conditions, args.days)
        rules = score(load_alerts(pg.url), cohort.episodes(), conditions, args.days, ignore_rules=IGNORE)
        runtime = time.perf_counter() - t_all
        if args.json:
            doc = {
                "patients": args.patients,
                "days": args.days,
                "seed": args.seed,
                "cohort": "hard" if args.hard else "default",
                "step_hours": args.step_hours,
                "observations": stored,
                "runtime_s": round(runtime, 1),
                "engine": [
                    dict(zip(format_staff(staff, "engine")[0], c, strict=True))
                    for c in format_staff(staff, "engine")[1:]
                ],
                "staff_or_patient": [
                    dict(zip(format_staff(acted, "acted")[0], c, strict=True)) for c in format_staff(acted, "acted")[1:]
                ],
                "intended_route": [
                    dict(zip(format_staff(routed, "route")[0], c, strict=True))
                    for c in format_staff(routed, "route")[1:]
                ],
                "baseline": [
                    dict(zip(format_staff(fixed, "fixed")[0], c, strict=True)) for c in format_staff(fixed, "fixed")[1:]
                ],
            }
            print(json.dumps(doc, indent=1))
            return
        cohort_name = "hard" if args.hard else "default"
        print(f"cohort {cohort_name}: {args.patients} patients x {args.days} days, seed {args.seed}")
        print(
            f"stored {stored} observations in {t_store:.1f} s;"
            f" {steps} evaluations every {args.step_hours:g} h in {t_replay:.1f} s"
        )
        for cells in [*format_staff(staff, "engine"), *format_staff(fixed, "fixed")[1:]]:
            print(" | ".join(cells))
        print()
        print("sensitivity counting messages to the patient as well (staff/pm above is staff only):")
        for cells in format_staff(acted, "staff or patient")[1:]:
            print(" | ".join(cells[:8]))
        print()
        print("sensitivity by the route each episode's grade is meant to take (staff, or patient for a level 1 low")
        print("or a brief high; simulators/series.py ROUTE_OF_GRADE):")
        for cells in format_staff(routed, "intended route")[1:]:
            print(" | ".join(cells[:8]))
        graded = score_staff(
            staff_alerts, cohort.episodes(), conditions, args.days, not_detections=GAP_RULES, by_label=True
        )
        routed_graded = score_by_route(
            staff_alerts, told, cohort.episodes(), conditions, args.days, not_detections=GAP_RULES, by_label=True
        )
        print("per grade (>= 20 episodes), staff only vs intended route:")
        for only, via in zip(graded, routed_graded, strict=True):
            for label, (d, n) in via.sensitivity_by_type.items():
                d0, _ = only.sensitivity_by_type[label]
                print(
                    f"  {via.condition.value} {label}: staff only {100 * d0 / n:.0f}%,"
                    f" intended route {100 * d / n:.0f}% of {n}"
                )
        print()
        print(
            f"measure again: {repeating.asked} asked, {repeating.answered} repeats taken"
            f" (compliance {args.compliance:g})"
        )
        for condition, event, n, per_pm in staff_breakdown(pg.url, args.days):
            print(f"staff alerts {condition} {event}: {n} ({per_pm:.2f} per patient-month)")
        print()
        for cells in format_rows(rules):
            print(" | ".join(cells))
        print(f"total runtime {runtime:.1f} s")
    finally:
        pg.stop(mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
