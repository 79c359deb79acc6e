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


@dataclass(frozen=True)
class ConditionSummary:
    """The figures a region decides on, per condition: what is found, how fast, at what burden."""

    condition: Condition
    patients: int
    episodes: int
    detected: int
    # The lowest sensitivity among episode types with at least MIN_EPISODES_PER_TYPE episodes.
    worst_type: str | None
    worst_type_sensitivity: float | None
    median_delay_h: float | None  # first staff alert minus episode start
    staff_per_patient_month: float
    false_per_stable_patient_month: float  # alerts of patients without any episode

    @property
    def sensitivity(self) -> float | None:
        return self.detected / self.episodes if self.episodes else None


MIN_EPISODES_PER_TYPE = 20


def summarise(
    alerts: Sequence[AlertRecord],
    episodes: Sequence[Episode],
    conditions: dict[str, tuple[Condition, ...]],
    days: float,
    *,
    windows: dict[Condition, Window] | None = None,
    ignore_rules: frozenset[str] = frozenset(),
) -> list[ConditionSummary]:
    """Per condition: sensitivity (overall and worst episode type), median delay, burden."""
    alerts = [a for a in alerts if a.rule_id not in ignore_rules]
    matching = match_alerts(alerts, episodes, windows)
    months = days / DAYS_PER_MONTH
    with_episodes = {e.patient for e in episodes}
    out = []
    for condition in Condition:
        patients = {p for p, cs in conditions.items() if condition in cs}
        if not patients:
            continue
        eps = [k for k, e in enumerate(episodes) if e.condition is condition and e.patient in patients]
        delays: list[float] = []
        found_by_type: dict[str, list[bool]] = defaultdict(list)
        for k in eps:
            hits = matching.alerts_of_episode[k]
            if hits:
                first = min(alerts[a].opened_at for a in hits)
                delays.append((first - episodes[k].start).total_seconds() / 3600)
            found_by_type[episodes[k].type].append(bool(hits))
        typed = {t: sum(v) / len(v) for t, v in found_by_type.items() if len(v) >= MIN_EPISODES_PER_TYPE}
        worst = min(typed, key=lambda t: typed[t]) if typed else None
        mine = [a for a in alerts if a.patient in patients and a.severity != "info"]
        stable = patients - with_episodes
        stable_alerts = sum(1 for a in mine if a.patient in stable)
        out.append(
            ConditionSummary(
                condition=condition,
                patients=len(patients),
                episodes=len(eps),
                detected=len(delays),
                worst_type=worst,
                worst_type_sensitivity=typed[worst] if worst else None,
                median_delay_h=statistics.median(delays) if delays else None,
                staff_per_patient_month=len(mine) / (len(patients) * months) if months else 0.0,
                false_per_stable_patient_month=stable_alerts / (len(stable) * months) if stable and months else 0.0,
            )
        )
    return out


def format_summary(engine: Sequence[ConditionSummary], baseline: Sequence[ConditionSummary] | None = None) -> str:
    """A plain-text table: the engine's figures, and the fixed-threshold baseline's beside them."""

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.0f}%"

    def hours(x: float | None) -> str:
        return "-" if x is None else f"{x:.1f}"

    head = (
        "condition | patients | episodes | sensitivity | worst type (n>=20) | median delay h | staff/pm"
        " | false/stable pm"
    )
    if baseline is not None:
        head += " | fixed: sensitivity | fixed: delay h | fixed: staff/pm | fixed: false/stable pm"
    lines = [head]
    base = {b.condition: b for b in baseline or ()}
    for s in engine:
        worst = "-" if s.worst_type is None else f"{s.worst_type} {pct(s.worst_type_sensitivity)}"
        cells = [
            s.condition.value,
            str(s.patients),
            str(s.episodes),
            pct(s.sensitivity),
            worst,
            hours(s.median_delay_h),
            f"{s.staff_per_patient_month:.2f}",
            f"{s.false_per_stable_patient_month:.2f}",
        ]
        b = base.get(s.condition)
        if baseline is not None and b is not None:
            cells += [
                pct(b.sensitivity),
                hours(b.median_delay_h),
                f"{b.staff_per_patient_month:.2f}",
                f"{b.false_per_stable_patient_month:.2f}",
            ]
        lines.append(" | ".join(cells))
    return "\n".join(lines)


# Plain fixed thresholds as a published programme would run them, for comparison: one alert
# per patient, rule and local day, straight from the stored (non-rejected) readings.
FIXED_THRESHOLDS_SQL = """
WITH obs AS (
    SELECT o.patient_id, o.kind, o.component, o.measured_at, o.value, o.censored,
           (o.measured_at AT TIME ZONE 'Europe/Stockholm')::date AS day
    FROM observation o WHERE o.status <> 'rejected'
), hits AS (
    -- CGM below 3.0 mmol/L on three consecutive readings (~15 min at 5-min sampling).
    SELECT patient_id, 'FIX-CGM<3.0' AS rule, measured_at FROM (
        SELECT patient_id, measured_at,
               bool_and(value < 3.0 OR censored = 'low') OVER w AS low3, count(*) OVER w AS n
        FROM obs WHERE kind = 'glucose_cgm'
        WINDOW w AS (PARTITION BY patient_id ORDER BY measured_at ROWS 2 PRECEDING)
    ) c WHERE low3 AND n = 3
    UNION ALL
    SELECT patient_id, 'FIX-GLU<3.0', measured_at FROM obs
        WHERE kind = 'glucose_capillary' AND (value < 3.0 OR censored = 'low')
    UNION ALL
    -- Morning weight more than 2 kg above the lowest morning weight of the 3 days before.
    SELECT m.patient_id, 'FIX-WEIGHT+2', m.measured_at FROM (
        SELECT DISTINCT ON (patient_id, day) patient_id, day, measured_at, value
        FROM obs WHERE kind = 'weight' AND component = 'weight' ORDER BY patient_id, day, measured_at
    ) m WHERE m.value - (
        SELECT min(p.value) FROM obs p
        WHERE p.patient_id = m.patient_id AND p.kind = 'weight' AND p.component = 'weight'
          AND p.day BETWEEN m.day - 3 AND m.day - 1
    ) > 2.0
    UNION ALL
    SELECT patient_id, 'FIX-BP>=180/110', measured_at FROM obs
        WHERE kind = 'blood_pressure' AND ((component = 'systolic' AND value >= 180)
                                        OR (component = 'diastolic' AND value >= 110))
    UNION ALL
    SELECT patient_id, 'FIX-SPO2<88', measured_at FROM obs WHERE kind = 'spo2' AND component = 'spo2' AND value < 88
    UNION ALL
    SELECT patient_id, 'FIX-PULSE>120', measured_at FROM obs WHERE component = 'pulse' AND value > 120
    UNION ALL
    SELECT o.patient_id, 'FIX-PEF<60%', o.measured_at FROM obs o
        JOIN care_plan_current cp ON cp.patient_id = o.patient_id
        WHERE o.kind = 'spirometry' AND o.component = 'pef' AND cp.personal_best_pef > 0
          AND o.value < 0.6 * cp.personal_best_pef
)
SELECT p.pseudonym, h.rule, min(h.measured_at)
FROM hits h JOIN patient p ON p.id = h.patient_id
GROUP BY p.pseudonym, h.rule, (h.measured_at AT TIME ZONE 'Europe/Stockholm')::date
ORDER BY 3
"""


def fixed_threshold_alerts(database_url: str) -> list[AlertRecord]:
    """The baseline's alerts: what fixed published thresholds would have raised on the same data."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(FIXED_THRESHOLDS_SQL).fetchall()
    return [AlertRecord(r[0], r[1], r[2], "medium") for r in rows]


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
