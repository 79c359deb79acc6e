"""Scoring: how well the platform's alerts found the labelled episodes.

Definitions (also in simulators/README.md):

* An alert **matches** an episode of the same patient when it was opened inside the
  episode's window: from ``start - before`` to ``end + after``, with ``before``/``after``
  per condition (``DEFAULT_WINDOWS``). ``before`` admits rules that notice the first small
  change a little early (noise); ``after`` admits confirmations that need the next day's
  measurement. An alert matching no episode is a **false alert**.
* **Sensitivity** of a rule for a condition and episode type: the share of those episodes
  matched by at least one alert of the rule (the ``*`` row: by any rule).
* **Detection lead time**: episode ``end`` minus the opened time of the first matching
  alert. ``end`` is the clinically meaningful point: for slow deteriorations (heart
  failure, COPD, asthma, hypertension) the peak, i.e. the day a patient would be treated
  or admitted; for glycaemic episodes the return to range. Positive = warned before that
  point. The median over detected episodes is reported.
* **False alerts per patient-month** and **staff-reviewed alerts per patient-month**:
  counts over the patients enrolled for the condition, divided by their observed months
  (days / 30.44). An alert row is one staff review (the platform keeps one open alert per
  patient and rule while the condition lasts); ``info`` alerts go to the patient as
  reminders and are not counted as staff-reviewed.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from device_profiles.vocabulary import Condition
from simulators.series import Episode

DAYS_PER_MONTH = 30.44
ANY_RULE = "*"


@dataclass(frozen=True)
class AlertRecord:
    patient: str  # pseudonym
    rule_id: str
    opened_at: datetime
    severity: str = "medium"


@dataclass(frozen=True)
class Window:
    before: timedelta
    after: timedelta


DEFAULT_WINDOWS: dict[Condition, Window] = {
    Condition.DIABETES_T1: Window(timedelta(hours=1), timedelta(hours=2)),
    Condition.DIABETES_T2: Window(timedelta(hours=1), timedelta(hours=2)),
    Condition.HEART_FAILURE: Window(timedelta(days=1), timedelta(days=3)),
    Condition.COPD: Window(timedelta(days=1), timedelta(days=3)),
    Condition.ASTHMA: Window(timedelta(days=1), timedelta(days=3)),
    Condition.HYPERTENSION: Window(timedelta(hours=12), timedelta(days=2)),
}


@dataclass(frozen=True)
class Matching:
    """Which alerts matched which episode (indices into the inputs)."""

    episode_of_alert: list[int | None]
    alerts_of_episode: list[list[int]]


def match_alerts(
    alerts: Sequence[AlertRecord],
    episodes: Sequence[Episode],
    windows: dict[Condition, Window] | None = None,
) -> Matching:
    """Match each alert to at most one episode of its patient.

    When windows of two episodes overlap, the alert goes to the episode it falls inside
    of, else to the one whose start is nearest.
    """
    windows = windows or DEFAULT_WINDOWS
    by_patient: dict[str, list[int]] = defaultdict(list)
    for k, ep in enumerate(episodes):
        by_patient[ep.patient].append(k)
    episode_of_alert: list[int | None] = []
    alerts_of_episode: list[list[int]] = [[] for _ in episodes]
    for a_idx, alert in enumerate(alerts):
        best: tuple[int, float, int] | None = None
        for k in by_patient.get(alert.patient, []):
            ep = episodes[k]
            w = windows[ep.condition]
            if not ep.start - w.before <= alert.opened_at <= ep.end + w.after:
                continue
            inside = 0 if ep.start <= alert.opened_at <= ep.end else 1
            distance = abs((alert.opened_at - ep.start).total_seconds())
            if best is None or (inside, distance) < best[:2]:
                best = (inside, distance, k)
        episode_of_alert.append(None if best is None else best[2])
        if best is not None:
            alerts_of_episode[best[2]].append(a_idx)
    return Matching(episode_of_alert, alerts_of_episode)


@dataclass(frozen=True)
class RuleScore:
    condition: Condition
    episode_type: str  # "-" when the condition had no episodes
    rule_id: str
    episodes: int
    detected: int
    median_lead_h: float | None
    false_per_patient_month: float
    reviewed_per_patient_month: float
    alerts: int

    @property
    def sensitivity(self) -> float | None:
        return self.detected / self.episodes if self.episodes else None


def score(
    alerts: Sequence[AlertRecord],
    episodes: Sequence[Episode],
    conditions: dict[str, tuple[Condition, ...]],
    days: float,
    *,
    windows: dict[Condition, Window] | None = None,
    ignore_rules: frozenset[str] = frozenset(),
) -> list[RuleScore]:
    """Per condition, episode type and rule (plus ``*`` for any rule): the figures above.

    Sensitivity and lead time are per episode type (a hypoglycaemia rule is not expected
    to find hyperglycaemia); false and staff-reviewed alerts per patient-month are per
    rule, so they repeat on each episode type's row. ``conditions`` maps every enrolled
    patient (pseudonym) to their conditions; alerts of other patients are ignored, and
    so are alerts of ``ignore_rules`` (e.g. adherence rules such as "no data", which can
    coincide with an episode without detecting it).
    """
    alerts = [a for a in alerts if a.rule_id not in ignore_rules]
    matching = match_alerts(alerts, episodes, windows)
    months_per_patient = days / DAYS_PER_MONTH
    rows: list[RuleScore] = []
    for condition in Condition:
        patients = {p for p, cs in conditions.items() if condition in cs}
        if not patients:
            continue
        ep_all = [k for k, e in enumerate(episodes) if e.condition is condition and e.patient in patients]
        types = sorted({episodes[k].type for k in ep_all}) or ["-"]
        a_idx = [k for k, a in enumerate(alerts) if a.patient in patients]
        a_set = set(a_idx)
        rules = sorted({alerts[k].rule_id for k in a_idx})
        patient_months = len(patients) * months_per_patient
        # A rule that finds one type of episode is not listed under the other types.
        finds = {
            (episodes[k].type, alerts[a].rule_id) for k in ep_all for a in matching.alerts_of_episode[k] if a in a_set
        }
        found_types = {rule: {t for t, r in finds if r == rule} for rule in rules}
        for ep_type in types:
            ep_idx = [k for k in ep_all if episodes[k].type == ep_type]
            listed = [r for r in rules if not found_types[r] or ep_type in found_types[r]]
            for rule in [*listed, ANY_RULE]:
                mine = [k for k in a_idx if rule in (ANY_RULE, alerts[k].rule_id)]
                mine_set = set(mine)
                leads: list[float] = []
                detected = 0
                for k in ep_idx:
                    hits = [a for a in matching.alerts_of_episode[k] if a in mine_set]
                    if hits:
                        detected += 1
                        first = min(alerts[a].opened_at for a in hits)
                        leads.append((episodes[k].end - first).total_seconds() / 3600)
                false = sum(1 for k in mine if matching.episode_of_alert[k] is None)
                reviewed = sum(1 for k in mine if alerts[k].severity != "info")
                rows.append(
                    RuleScore(
                        condition=condition,
                        episode_type=ep_type,
                        rule_id=rule,
                        episodes=len(ep_idx),
                        detected=detected,
                        median_lead_h=statistics.median(leads) if leads else None,
                        false_per_patient_month=false / patient_months if patient_months else 0.0,
                        reviewed_per_patient_month=reviewed / patient_months if patient_months else 0.0,
                        alerts=len(mine),
                    )
                )
    return rows


def load_alerts(database_url: str, patients: Iterable[str] | None = None) -> list[AlertRecord]:
    """Every alert shown to staff, with its patient's pseudonym, at the time staff first saw it.

    Alerts routed to the patient, to support or to the record only, and alerts still awaiting
    a confirming measurement, never reached the queue: they are neither staff reviews nor
    detections.
    """
    sql = (
        "SELECT p.pseudonym, a.rule_id, a.shown_to_staff_at, a.severity FROM alert a "
        "JOIN patient p ON p.id = a.patient_id WHERE a.shown_to_staff_at IS NOT NULL AND a.route = 'staff'"
    )
    params: tuple[object, ...] = ()
    if patients is not None:
        sql += " AND p.pseudonym = ANY(%s)"
        params = (list(patients),)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(sql + " ORDER BY a.shown_to_staff_at", params).fetchall()
    return [AlertRecord(r[0], r[1], r[2], r[3]) for r in rows]


def format_rows(rows: Sequence[RuleScore]) -> list[list[str]]:
    """Table cells for printing (header first)."""
    out = [
        [
            "condition",
            "episode",
            "rule",
            "episodes",
            "detected",
            "sensitivity",
            "median lead h",
            "false/pm",
            "reviewed/pm",
        ]
    ]
    for r in rows:
        sens = "-" if r.sensitivity is None else f"{100 * r.sensitivity:.0f}%"
        lead = "-" if r.median_lead_h is None else f"{r.median_lead_h:.1f}"
        out.append(
            [
                r.condition.value,
                r.episode_type,
                r.rule_id,
                str(r.episodes),
                str(r.detected),
                sens,
                lead,
                f"{r.false_per_patient_month:.2f}",
                f"{r.reviewed_per_patient_month:.2f}",
            ]
        )
    return out


# --- staff-facing scoring (issue 12) ---------------------------------------------------


@dataclass(frozen=True)
class StaffAlert:
    """One alert row as staff experience it.

    ``shown_at`` is when it entered a staff queue (``shown_to_staff_at``); None when it
    never did (routed to the patient, to technical support or only to the record). Rows
    of the older engine, which does not set the column, fall back to ``opened_at`` for
    non-info rows (see :func:`staff_time`).
    """

    patient: str
    rule_id: str
    opened_at: datetime
    shown_at: datetime | None
    route: str = "staff"


def staff_time(
    opened_at: datetime, shown_at: datetime | None, route: str, severity: str, *, engine_sets_shown: bool
) -> datetime | None:
    """When the alert reached staff, or None: not a staff alert and not a detection."""
    if route != "staff":
        return None
    if shown_at is not None:
        return shown_at
    if engine_sets_shown:
        return None
    return None if severity == "info" else opened_at


@dataclass(frozen=True)
class StaffScore:
    condition: Condition
    patients: int
    stable_patients: int
    episodes: int
    detected: int
    sensitivity_by_type: dict[str, tuple[int, int]]  # type -> (detected, episodes), types with >= 20
    median_delay_h: float | None  # episode start -> first staff alert
    median_lead_h: float | None  # first staff alert -> episode end
    staff_per_pm: float
    false_staff_per_pm_stable: float

    @property
    def sensitivity(self) -> float | None:
        return self.detected / self.episodes if self.episodes else None


MIN_EPISODES_PER_TYPE = 20


def score_staff(
    alerts: Sequence[StaffAlert],
    episodes: Sequence[Episode],
    conditions: dict[str, tuple[Condition, ...]],
    days: float,
    *,
    windows: dict[Condition, Window] | None = None,
    ignore_rules: frozenset[str] = frozenset(),
    not_detections: frozenset[str] = frozenset(),
    by_label: bool = False,
) -> list[StaffScore]:
    """Per condition: sensitivity, delay and staff load, counting only alerts shown to staff.

    ``by_label``: the per-type figures by ``Episode.label`` (type, grade and intended route)
    instead of the type alone.

    Detection uses the shown time (an alert in a patient or record route detects nothing);
    an alert detects an episode when shown inside the episode's window (:data:`DEFAULT_WINDOWS`).
    Stable patients are those with no episode at all in the scored period. Alerts of
    ``not_detections`` (missing-data rules) are staff load but never detect an episode: a
    gap that happens to fall in an episode's window found nothing.
    """
    shown = [
        AlertRecord(a.patient, a.rule_id, a.shown_at)
        for a in alerts
        if a.shown_at is not None and a.rule_id not in ignore_rules
    ]
    detecting = [a for a in shown if a.rule_id not in not_detections]
    matching = match_alerts(detecting, episodes, windows)
    months = days / DAYS_PER_MONTH
    with_episode = {e.patient for e in episodes}
    out: list[StaffScore] = []
    for condition in Condition:
        patients = {p for p, cs in conditions.items() if condition in cs}
        if not patients:
            continue
        stable = patients - with_episode
        ep_idx = [k for k, e in enumerate(episodes) if e.condition is condition and e.patient in patients]
        delays: list[float] = []
        leads: list[float] = []
        per_type: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        detected = 0
        for k in ep_idx:
            ep = episodes[k]
            key = ep.label if by_label else ep.type
            per_type[key][1] += 1
            hits = matching.alerts_of_episode[k]
            if not hits:
                continue
            detected += 1
            per_type[key][0] += 1
            first = min(detecting[a].opened_at for a in hits)
            delays.append((first - ep.start).total_seconds() / 3600)
            leads.append((ep.end - first).total_seconds() / 3600)
        n_staff = sum(1 for a in shown if a.patient in patients)
        n_false_stable = sum(1 for a in shown if a.patient in stable)
        out.append(
            StaffScore(
                condition=condition,
                patients=len(patients),
                stable_patients=len(stable),
                episodes=len(ep_idx),
                detected=detected,
                sensitivity_by_type={t: (d, n) for t, (d, n) in sorted(per_type.items()) if n >= MIN_EPISODES_PER_TYPE},
                median_delay_h=statistics.median(delays) if delays else None,
                median_lead_h=statistics.median(leads) if leads else None,
                staff_per_pm=n_staff / (len(patients) * months) if months else 0.0,
                false_staff_per_pm_stable=n_false_stable / (len(stable) * months) if stable and months else 0.0,
            )
        )
    return out


def score_by_route(
    staff_alerts: Sequence[StaffAlert],
    patient_alerts: Sequence[StaffAlert],
    episodes: Sequence[Episode],
    conditions: dict[str, tuple[Condition, ...]],
    days: float,
    *,
    windows: dict[Condition, Window] | None = None,
    not_detections: frozenset[str] = frozenset(),
    by_label: bool = False,
) -> list[StaffScore]:
    """As :func:`score_staff`, each episode detected through the route its grade is meant to take.

    An episode whose ``route`` is "staff" (a level 2 or prolonged low, a prolonged high, every
    slow deterioration) is detected only by a staff alert; one whose route is "patient" (a
    level 1 low, a brief high: ``series.ROUTE_OF_GRADE``) by a staff alert or a message to the
    patient (``patient_alerts``, e.g. :func:`load_patient_detections`). Per-type figures are by
    type (each episode through its own route), or with ``by_label`` by ``Episode.label`` (type,
    grade and route). Staff load counts ``staff_alerts`` only.
    """
    shown = [a for a in staff_alerts if a.shown_at is not None and a.rule_id not in not_detections]
    told = [a for a in patient_alerts if a.shown_at is not None and a.rule_id not in not_detections]
    detecting = [*shown, *told]
    is_staff = [True] * len(shown) + [False] * len(told)
    records = [AlertRecord(a.patient, a.rule_id, a.shown_at) for a in detecting if a.shown_at is not None]
    matching = match_alerts(records, episodes, windows)
    months = days / DAYS_PER_MONTH
    with_episode = {e.patient for e in episodes}
    load = [a for a in staff_alerts if a.shown_at is not None]
    out: list[StaffScore] = []
    for condition in Condition:
        patients = {p for p, cs in conditions.items() if condition in cs}
        if not patients:
            continue
        stable = patients - with_episode
        ep_idx = [k for k, e in enumerate(episodes) if e.condition is condition and e.patient in patients]
        delays: list[float] = []
        leads: list[float] = []
        per_type: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        detected = 0
        for k in ep_idx:
            ep = episodes[k]
            key = ep.label if by_label else ep.type
            per_type[key][1] += 1
            hits = [a for a in matching.alerts_of_episode[k] if ep.route == "patient" or is_staff[a]]
            if not hits:
                continue
            detected += 1
            per_type[key][0] += 1
            first = min(records[a].opened_at for a in hits)
            delays.append((first - ep.start).total_seconds() / 3600)
            leads.append((ep.end - first).total_seconds() / 3600)
        out.append(
            StaffScore(
                condition=condition,
                patients=len(patients),
                stable_patients=len(stable),
                episodes=len(ep_idx),
                detected=detected,
                sensitivity_by_type={t: (d, n) for t, (d, n) in sorted(per_type.items()) if n >= MIN_EPISODES_PER_TYPE},
                median_delay_h=statistics.median(delays) if delays else None,
                median_lead_h=statistics.median(leads) if leads else None,
                staff_per_pm=sum(1 for a in load if a.patient in patients) / (len(patients) * months)
                if months
                else 0.0,
                false_staff_per_pm_stable=(
                    sum(1 for a in load if a.patient in stable) / (len(stable) * months) if stable and months else 0.0
                ),
            )
        )
    return out


def load_staff_alerts(database_url: str) -> list[StaffAlert]:
    """Every alert with its staff time (:func:`staff_time`).

    When no alert row at all has ``shown_to_staff_at`` set, the engine is taken to be
    the older one that does not set it, and non-info staff-route rows count from
    ``opened_at``.
    """
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT p.pseudonym, a.rule_id, a.opened_at, a.shown_to_staff_at, a.route, a.severity"
            " FROM alert a JOIN patient p ON p.id = a.patient_id ORDER BY a.opened_at"
        ).fetchall()
    sets_shown = any(r[3] is not None for r in rows)
    return [
        StaffAlert(r[0], r[1], r[2], staff_time(r[2], r[3], r[4], r[5], engine_sets_shown=sets_shown), r[4])
        for r in rows
    ]


def load_patient_detections(database_url: str, not_detections: frozenset[str] = frozenset()) -> list[StaffAlert]:
    """Findings the platform routed to the patient (a message through the gateway), as detections.

    For the "staff or patient" view of sensitivity: an episode the patient was told about
    (a level 1 low, a short high) was acted on even though no nurse saw it. Gap rules
    (reminders) are left out: a reminder to measure detects nothing.
    """
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT p.pseudonym, f.rule_id, f.first_at FROM alert_finding f JOIN patient p ON p.id = f.patient_id"
            " WHERE f.route = 'patient' AND NOT (f.rule_id = ANY(%s)) ORDER BY f.first_at",
            (sorted(not_detections),),
        ).fetchall()
    return [StaffAlert(r[0], r[1], r[2], r[2], "patient") for r in rows]


def format_staff(rows: Sequence[StaffScore], label: str) -> list[list[str]]:
    """Table cells (header first) for :func:`score_staff` rows; ``label`` names the detector."""
    out = [
        [
            "detector",
            "condition",
            "patients",
            "stable",
            "episodes",
            "sensitivity",
            "by type (>=20 ep.)",
            "median delay h",
            "median lead h",
            "staff/pm",
            "false staff/pm stable",
        ]
    ]
    for r in rows:
        sens = "-" if r.sensitivity is None else f"{100 * r.sensitivity:.0f}%"
        types = ", ".join(f"{t} {100 * d / n:.0f}% of {n}" for t, (d, n) in r.sensitivity_by_type.items()) or "-"
        out.append(
            [
                label,
                r.condition.value,
                str(r.patients),
                str(r.stable_patients),
                str(r.episodes),
                sens,
                types,
                "-" if r.median_delay_h is None else f"{r.median_delay_h:.1f}",
                "-" if r.median_lead_h is None else f"{r.median_lead_h:.1f}",
                f"{r.staff_per_pm:.2f}",
                f"{r.false_staff_per_pm_stable:.2f}",
            ]
        )
    return out
