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
    """Every alert that reached the staff queue, with its patient's pseudonym.

    Patient-, technical- and record-routed events (e.g. missing-data triage's reminders,
    device and gateway problems) never have ``shown_to_staff_at`` and are not staff load;
    an alert counts from when staff first saw it (a gap reaches staff only after its limit).
    """
    sql = (
        "SELECT p.pseudonym, a.rule_id, a.shown_to_staff_at, a.severity"
        " FROM alert a JOIN patient p ON p.id = a.patient_id WHERE a.shown_to_staff_at IS NOT NULL"
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
