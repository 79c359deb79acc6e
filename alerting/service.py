"""The alerting service: evaluate on ingest's notifications, sweep everyone periodically.

Ingest sends NOTIFY egenmon_new_readings '{"patients": [...]}' after each commit (schema.notify); the
service LISTENs and evaluates the named patients (batched over ``debounce_s``, at most
``notify_batch_max`` at a time, duplicates coalesced) on a thread of its own, so their
alerts are in the database within a second even while a sweep runs. Every ``sweep_interval_s`` it evaluates all
active patients (no-data gaps, 14-day metrics and hysteresis need no new reading to
change) and runs housekeeping (ended snoozes, escalation deadlines).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import asdict
from datetime import timedelta
from functools import partial
from typing import Any

import psycopg
from prometheus_client import start_http_server

from alerting import metrics
from alerting.claims import PatientClaims
from alerting.cohort import Cohort
from alerting.engine import Finding, evaluate
from alerting.feedback import FeedbackPublisher
from alerting.lifecycle import LifecycleStats, apply_findings, housekeeping
from alerting.load import load_cohort, load_dataset
from alerting.notified import load_notified_cohort
from alerting.partitions import PartitionOwner
from alerting.receipts import queue_receipts
from alerting.region_cache import RegionCache
from alerting.rules import REGISTRY
from alerting.series import Dataset
from alerting.settings import AlertingSettings
from alerting.subset import take
from alerting.triage_store import TRIAGED_RULES, triage_findings
from schema.notify import NEW_READINGS_CHANNEL, decode_new_readings

log = logging.getLogger(__name__)


def load_and_evaluate(
    conn: psycopg.Connection[Any], patient_ids: Sequence[str] | None, now: float, *, notified: bool = False
) -> tuple[Cohort, Dataset, list[Finding]]:
    """The patients' care plans and readings as of ``now``, and every rule's findings (no writes).

    ``notified``: a few patients named by notifications, whose care plans are read by index
    (``notified.load_notified_cohort``) instead of through the region-wide view, and whose
    readings come as one array row per series and patient: for a few patients that is far
    fewer protocol messages than binary COPY's one per reading (the same dataset).
    """
    if notified and patient_ids is not None:
        cohort = load_notified_cohort(conn, patient_ids)
        data = load_dataset(conn, cohort, now, method="arrays")
    else:
        cohort = load_cohort(conn, patient_ids)
        data = load_dataset(conn, cohort, now)
    return cohort, data, evaluate(data, cohort, now)


def store_findings(
    conn: psycopg.Connection[Any],
    cohort: Cohort,
    data: Dataset,
    findings: Sequence[Finding],
    now: float,
    *,
    triage: bool = True,
) -> LifecycleStats:
    """Triage the gap findings and apply the lifecycle to the others (``load_and_evaluate``'s result)."""
    # The gap rules (NODATA, D10, HF9) are routed by missing-data triage (why is data
    # missing, who must act), not by severity: the lifecycle gets every other finding and
    # leaves the triage events alone (alerting/README.md, "Missing-data triage").
    gaps = triage_findings(conn, cohort, data, findings, now) if triage else LifecycleStats()
    stats = apply_findings(
        conn,
        cohort,
        [f for f in findings if f.rule_id not in TRIAGED_RULES],
        now,
        rules=[r for r in REGISTRY if r not in TRIAGED_RULES],
        data=data,
    )
    stats.opened += gaps.opened
    stats.updated += gaps.updated
    stats.messages += gaps.messages
    if metrics.live():
        for f in findings:
            metrics.FINDINGS.labels(f.rule_id, f.severity).inc()
        for name, count in asdict(stats).items():
            if count:
                metrics.ALERTS.labels(name).inc(count)
    return stats


def _log_evaluation(
    trigger: str, n: int, findings: int, stats: LifecycleStats, started: float, *, extra: str = ""
) -> None:
    metrics.EVALUATIONS.labels(trigger).inc()
    metrics.EVALUATED_PATIENTS.labels(trigger).inc(n)
    metrics.EVALUATION_SECONDS.labels(trigger).observe(time.perf_counter() - started)
    log.info(
        "evaluated trigger=%s patients=%d findings=%d opened=%d updated=%d suggested=%d %selapsed_ms=%.1f",
        trigger,
        n,
        findings,
        stats.opened,
        stats.updated,
        stats.resolution_suggested,
        extra,
        (time.perf_counter() - started) * 1e3,
    )


def evaluate_and_store(
    conn: psycopg.Connection[Any],
    patient_ids: Sequence[str] | None,
    now: float | None = None,
    trigger: str = "manual",
    *,
    triage: bool = True,
    loaded: tuple[Cohort, Dataset] | None = None,
) -> tuple[int, LifecycleStats]:
    """Load, evaluate and apply the lifecycle for the given patients (None: everyone active).

    ``triage=False`` leaves the gap rules out (a replay of the past: triage reads the
    gateways' current state). ``loaded``: the cohort and data already loaded (a sweep
    chunk sliced from its region), instead of loading ``patient_ids``.
    """
    t = time.time() if now is None else now
    started = time.perf_counter()
    if loaded is None:
        cohort, data, findings = load_and_evaluate(conn, patient_ids, t, notified=trigger == "notify")
    else:
        cohort, data = loaded
        findings = evaluate(data, cohort, t)
    stats = store_findings(conn, cohort, data, findings, t, triage=triage)
    _log_evaluation(trigger, cohort.n, len(findings), stats, started)
    return len(findings), stats


def _fmt(partitions: frozenset[int]) -> str:
    return ",".join(map(str, sorted(partitions))) or "-"


def parse_payload(payload: str) -> list[str]:
    """Patient ids from a notification; malformed payloads are logged and ignored."""
    try:
        return decode_new_readings(payload)
    except ValueError as err:
        log.warning("ignoring malformed %s payload (%s)", NEW_READINGS_CHANNEL, err)
        metrics.ERRORS.labels("payload").inc()
        return []


class NotifyQueue:
    """Patients named by notifications and not yet evaluated, coalesced, with when each was first named."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: dict[str, float] = {}

    def add(self, ids: Sequence[str]) -> None:
        now = time.perf_counter()
        with self._cond:
            for pid in ids:
                self._pending.setdefault(pid, now)
            if ids:
                self._cond.notify_all()

    def wait(self, timeout: float) -> float | None:
        """When the oldest pending patient was named, waiting up to ``timeout`` for one; None: none."""
        with self._cond:
            if not self._pending:
                self._cond.wait(timeout=timeout)
            return min(self._pending.values()) if self._pending else None

    def oldest_first(self) -> list[str]:
        with self._cond:
            return sorted(self._pending, key=lambda p: (self._pending[p], p))

    def pop(self, ids: Sequence[str]) -> float:
        """Remove ``ids``; when the first of them was named."""
        with self._cond:
            return min((self._pending.pop(p) for p in ids if p in self._pending), default=time.perf_counter())

    def __len__(self) -> int:
        with self._cond:
            return len(self._pending)


class AlertingService:
    """Three threads of its own (and the feedback and replay threads): the listener fills
    a queue from ingest's notifications, the notify evaluator drains it in batches on its
    own connection, and the sweep evaluates everyone on another. A notified patient is
    thus never stuck behind a sweep of the region: at most behind the one sweep chunk that
    holds them (``PatientClaims``).
    """

    def __init__(self, settings: AlertingSettings) -> None:
        self.settings = settings
        self.stop_event = threading.Event()
        self._last_sweep = 0.0
        self.feedback = FeedbackPublisher(settings) if settings.mqtt_url else None
        self.claims = PatientClaims()
        self.queue = NotifyQueue()
        # Which patients this worker evaluates (alerting/partitions.py); everyone by default.
        self.owner = PartitionOwner(settings.database_url, settings.partitions)
        self._sweep_soon = threading.Event()  # partitions gained: sweep them now
        # The sweep's region between sweeps (its own share when partitioned): each sweep
        # reads only the rows ingested since the last, with a full reload every
        # ``full_reload_s`` and whenever the partitions change.
        self.region_cache = RegionCache(
            full_reload_s=settings.full_reload_s,
            overlap_s=settings.incremental_overlap_s,
            block=settings.sweep_load_patients,
        )

    def sweep(self, conn: psycopg.Connection[Any]) -> None:
        ids = [str(r[0]) for r in conn.execute("SELECT id::text FROM patient WHERE active ORDER BY id")]
        ids = self.owner.mine(ids)
        owned = self.owner.owned
        now = time.time()
        # Taken before the region is read: a patient the notify path evaluates after this has
        # a decision from newer readings than the sweep's, and the sweep leaves it alone.
        mark = self.claims.mark()
        # The region once for the sweep, not once per chunk: the rows since the last sweep
        # merged into the kept arrays, or the whole window (one pass per load block).
        started = time.perf_counter()
        region = self.region_cache.load(conn, ids, now, scope=owned)
        metrics.SWEEP_LOAD_SECONDS.observe(time.perf_counter() - started)
        report = self.region_cache.last
        if report is not None:
            metrics.SWEEP_LOADS.labels("full" if report.full else "incremental").inc()
            log.info(
                "sweep region load=%s rows=%d added=%d removed=%d elapsed_ms=%.1f "
                "cohort_ms=%.1f read_ms=%.1f merge_ms=%.1f",
                f"full ({report.reason})" if report.full else "incremental",
                report.rows,
                report.added,
                report.removed,
                report.seconds * 1e3,
                report.cohort_s * 1e3,
                report.read_s * 1e3,
                report.merge_s * 1e3,
            )
        step = self.settings.sweep_chunk
        queued = 0
        for k in range(0, region.cohort.n, step):
            cohort, data = region.chunk(k, k + step)
            with self.owner.use(cohort.patient_ids) as mine:
                if not mine:
                    continue
                if len(mine) != cohort.n:
                    # A partition given up since the region was loaded: only the rest, loaded anew.
                    cohort = load_cohort(conn, mine)
                    data = load_dataset(conn, cohort, now)
                stats = self._sweep_chunk(conn, cohort, data, now, mark)
            if stats is None:
                return
            queued += stats.messages
        if queued and self.feedback is not None:
            self.feedback.wake.set()
        if not self.owner.leads:  # partitioned: one worker runs the housekeeping
            self._last_sweep = time.monotonic()
            metrics.LAST_SWEEP.set(now)
            log.info("sweep done patients=%d partitions=%s", len(ids), _fmt(owned))
            return
        with self.claims.exclusive():  # housekeeping may touch any patient's alerts
            hk = housekeeping(conn, now, self.settings.escalation_deadlines_min)
        if hk.escalated:
            metrics.ALERTS.labels("escalated").inc(hk.escalated)
        if hk.reopened_after_snooze:
            metrics.ALERTS.labels("reopened_after_snooze").inc(hk.reopened_after_snooze)
        for severity, n in conn.execute("SELECT severity, count(*) FROM alert WHERE status <> 'resolved' GROUP BY 1"):
            metrics.OPEN_ALERTS.labels(severity).set(n)
        self._last_sweep = time.monotonic()
        metrics.LAST_SWEEP.set(now)
        log.info(
            "sweep done patients=%d partitions=%s escalated=%d snoozes_ended=%d",
            len(ids),
            _fmt(owned),
            hk.escalated,
            hk.reopened_after_snooze,
        )

    def _sweep_chunk(
        self, conn: psycopg.Connection[Any], cohort: Cohort, data: Dataset, now: float, mark: int
    ) -> LifecycleStats | None:
        """Evaluate a loaded chunk holding no claims, then write it in ``sweep_write_batch`` batches.

        Each batch claims only its patients that the notify evaluator has not evaluated since
        ``mark`` (taken before the region was loaded; ``PatientClaims.take_unevaluated``); the
        others already have decisions from newer readings and are left out. So a notification
        never waits for the sweep's load or evaluation, at most for one batch of its writes.
        None: stopping.
        """
        started = time.perf_counter()
        findings = evaluate(data, cohort, now)
        loaded = time.perf_counter()
        findings = sorted(findings, key=lambda f: f.patient)
        at = [f.patient for f in findings]
        stats = LifecycleStats()
        left = 0
        step = self.settings.sweep_write_batch
        for lo in range(0, cohort.n, step):
            hi = min(lo + step, cohort.n)
            kept = self.claims.take_unevaluated(cohort.patient_ids[lo:hi], mark, self.stop_event)
            if kept is None:
                return None
            try:
                left += hi - lo - len(kept)
                if not kept:
                    continue
                wanted = set(kept)
                keep = [i for i in range(lo, hi) if cohort.patient_ids[i] in wanted]
                part = findings[bisect_left(at, lo) : bisect_left(at, hi)]
                sub, sub_data, sub_findings = take(cohort, data, part, keep)
                done = store_findings(conn, sub, sub_data, sub_findings, now)
            finally:
                self.claims.release(kept)
            for name, count in asdict(done).items():
                setattr(stats, name, getattr(stats, name) + count)
        _log_evaluation(
            "sweep",
            cohort.n,
            len(findings),
            stats,
            started,
            extra=f"left_to_notify={left} evaluate_ms={(loaded - started) * 1e3:.1f} ",
        )
        return stats

    def run(self) -> None:
        if self.settings.metrics_port:
            start_http_server(self.settings.metrics_port)
        feedback_thread = None
        if self.feedback is not None:
            feedback_thread = threading.Thread(target=self.feedback.run, name="feedback", daemon=True)
            feedback_thread.start()
        else:
            log.warning("no MQTT URL: messages to patients are queued but not sent")
        replay_thread = None
        if self.settings.replay_poll_s > 0:
            # Imported here: the replay itself imports this module (evaluate_and_store).
            from alerting.replay_worker import run_worker  # noqa: PLC0415

            # A thread of its own: a 90-day replay takes minutes, and the notify path must
            # keep raising live alerts within a second meanwhile.
            replay_thread = threading.Thread(
                target=run_worker,
                args=(self.settings.database_url, self.stop_event, self.settings.replay_poll_s),
                name="replay",
                daemon=True,
            )
            replay_thread.start()
        try:
            self._run()
        finally:
            self.stop_event.set()
            if self.feedback is not None and feedback_thread is not None:
                self.feedback.stop()
                feedback_thread.join(timeout=10)
            if replay_thread is not None:
                replay_thread.join(timeout=10)

    def _evaluate(self, conn: psycopg.Connection[Any], patient_ids: Sequence[str] | None, trigger: str) -> None:
        if patient_ids is None:  # everyone: this worker's share of them
            patient_ids = self.owner.mine(
                [str(r[0]) for r in conn.execute("SELECT id::text FROM patient WHERE active ORDER BY id")]
            )
        with self.owner.use(patient_ids) as mine:
            if mine:
                self._evaluate_owned(conn, mine, trigger)

    def _evaluate_owned(self, conn: psycopg.Connection[Any], patient_ids: Sequence[str], trigger: str) -> None:
        receipts = 0
        if trigger == "notify" and patient_ids and self.settings.receipts:
            # Before the evaluation: the receipt goes out ahead of a "measure again".
            receipts = queue_receipts(
                conn,
                patient_ids,
                max_age=timedelta(minutes=self.settings.receipt_max_age_min),
                ttl=timedelta(minutes=self.settings.receipt_ttl_min),
            )
        _, stats = evaluate_and_store(conn, patient_ids, trigger=trigger)
        if (stats.messages or receipts) and self.feedback is not None:
            self.feedback.wake.set()

    def _run(self) -> None:
        with psycopg.connect(self.settings.database_url, autocommit=True) as listen_conn:
            listen_conn.execute(f"LISTEN {NEW_READINGS_CHANNEL}")
            metrics.LISTENING.set(1)
            log.info("listening on %s; sweep every %.0f s", NEW_READINGS_CHANNEL, self.settings.sweep_interval_s)
            self._check_partitions()  # before the first sweep: what this worker owns
            workers = [
                threading.Thread(target=self._sweep_loop, name="sweep", daemon=True),
                threading.Thread(target=self._notify_loop, name="notify", daemon=True),
            ]
            if self.settings.partitions > 1:
                workers.append(threading.Thread(target=self._partition_loop, name="partitions", daemon=True))
            for w in workers:
                w.start()
            try:
                while not self.stop_event.is_set():
                    for note in listen_conn.notifies(timeout=1.0):
                        self.queue.add(self.owner.mine(parse_payload(note.payload)))
                        if self.stop_event.is_set():
                            break
            finally:
                self.stop_event.set()
                for w in workers:
                    w.join(timeout=60)
                self.owner.close()
        metrics.LISTENING.set(0)
        log.info("alerting service stopped")

    def _sweep_loop(self) -> None:
        with psycopg.connect(self.settings.database_url, autocommit=True) as conn:
            while not self.stop_event.is_set():
                self._sweep_soon.clear()
                self._safe(self.sweep, conn)
                # Until the interval is over, or partitions were gained (a sweep of them now).
                while not (self.stop_event.is_set() or self._sweep_soon.is_set()):
                    wait = self.settings.sweep_interval_s - (time.monotonic() - self._last_sweep)
                    if wait <= 0:
                        break
                    self.stop_event.wait(min(wait, 0.5))

    def _check_partitions(self) -> None:
        try:
            gained, _ = self.owner.check()
        except psycopg.Error as err:
            metrics.ERRORS.labels("partitions").inc()
            log.warning("partition check failed, owning none until the next: %s", err)
            return
        if gained:
            self._sweep_soon.set()

    def _partition_loop(self) -> None:
        while not self.stop_event.wait(self.settings.partition_check_s):
            self._check_partitions()

    def _notify_loop(self) -> None:
        with psycopg.connect(self.settings.database_url, autocommit=True) as conn:
            while not self.stop_event.is_set():
                first_at = self.queue.wait(timeout=1.0)
                if first_at is None:
                    continue
                # Gather whatever else arrives in the debounce window into the same evaluation.
                rest = first_at + self.settings.debounce_s - time.perf_counter()
                if rest > 0:
                    self.stop_event.wait(rest)
                # Oldest first, capped, and only patients no sweep chunk holds: the rest wait
                # for the next batch (a held patient is evaluated as soon as its chunk is done).
                batch = self.claims.take_free(self.queue.oldest_first(), self.settings.notify_batch_max)
                if not batch:
                    self.claims.wait_for_release(timeout=0.2)
                    continue
                named_at = self.queue.pop(batch)
                try:
                    self._safe(partial(self._evaluate, patient_ids=sorted(batch), trigger="notify"), conn)
                finally:
                    self.claims.release(batch)
                metrics.NOTIFY_LAG.observe(time.perf_counter() - named_at)

    def _safe(self, fn: Any, conn: psycopg.Connection[Any]) -> None:
        """One failed evaluation must not stop the service: log, count, go on."""
        try:
            fn(conn)
        except (psycopg.Error, ValueError) as err:
            metrics.ERRORS.labels("evaluate").inc()
            log.exception("evaluation failed: %s", err)
            if fn == self.sweep:  # wait a full interval before sweeping again
                self._last_sweep = time.monotonic()

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop_event.set())
