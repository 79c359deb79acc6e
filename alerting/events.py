"""Clinical events and routing: which rule hits belong together, and who must act on them.

A rule hit (a ``Finding``) is evidence; what staff work is an *event*: one alert per
patient and physiological event (``EventType``), carrying the evidence of every rule that
fired for it, with the highest severity among them. Before grouping, each finding is
routed (``Route``) to whoever must act: the monitoring team, the patient (through the
gateway's feedback), technical support, or nobody (kept in the record only).

Pure tables and functions: the lifecycle (``lifecycle.py``) applies them in the database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from alerting.engine import Finding
from alerting.rules import REGISTRY
from device_profiles.vocabulary import EventType, MessageLevel, Route, Severity

E = EventType
EVENT_OF_RULE: Mapping[str, EventType] = {
    **dict.fromkeys(("D1", "D2", "D3", "D4", "D5", "D6", "D11"), E.HYPOGLYCAEMIA),
    "D7": E.HYPERGLYCAEMIA,
    **dict.fromkeys(("D8", "D9"), E.GLYCAEMIC_CONTROL),
    **dict.fromkeys(("D10", "HF9", "NODATA"), E.MISSING_DATA),
    **dict.fromkeys(("HF1", "HF2", "HF3", "HF4"), E.FLUID_RETENTION),
    "HF5": E.HYPOTENSION,
    "HF6": E.PULSE,
    "HF7": E.HYPOXAEMIA,
    "HF8": E.HF_SYMPTOMS,
    **dict.fromkeys(("C1", "C2", "C3", "C4", "C5", "C6", "C7"), E.COPD_EXACERBATION),
    **dict.fromkeys(("A1", "A2", "A3", "A4", "A5", "A6"), E.ASTHMA_EXACERBATION),
    **dict.fromkeys(("H3", "H4"), E.BP_CRISIS),
    **dict.fromkeys(("H1", "H2", "H6"), E.BP_CONTROL),
    "H5": E.HYPOTENSION,
    "NEWS2": E.DETERIORATION,
}

# Rules whose default route is the patient: they ask the patient to act now (check the
# glucose, eat), and staff cannot act faster than the patient can. A forecast or a fast
# fall that becomes a real low reaches staff as D2/D3/D4.
PATIENT_RULES = frozenset({"D5", "D6"})
# Rules that go to the patient at these severities only: a post-meal high above 13.9 for 15
# minutes is everyday diabetes, and hours above it are first the patient's sick-day plan
# (check ketones, take a correction dose: ISPAD 2022 sick-day guidance); staff get the hours
# the corrections did not end (D7 high, 6 h) and the 14-day pattern (D8). With every D7
# medium at staff, hyperglycaemia was type 1's 3.2 and type 2's 2.0 staff alerts per
# patient-month on the hard cohort.
PATIENT_AT: Mapping[str, frozenset[str]] = {
    "D1": frozenset({"medium"}),
    "D7": frozenset({"low", "medium"}),
}
# Rules that go to the patient at these severities in patients with this condition only. A
# level 1 low on CGM (D1, < 3.9) is the consensus "alert value" the patient treats at once (15 g
# of glucose, measure again after 15 min; International Hypoglycaemia Study Group / ATTD 2019)
# in either type. In type 1 diabetes every low is the patient's to treat: a capillary < 3.9
# (D4 medium) too, and a level 2 low (< 3.0: D2, D4 high), a weekly event on CGM that the
# patient is trained to treat (ADA Standards of Care 2024, section 6; ISPAD 2022); staff cannot
# treat faster, and what staff change (the insulin plan) follows the pattern: the 3rd level 2
# low within 7 days (D11), a low that lasts (D3), the 14-day time below range (D8). On the hard
# cohort every type 1 level 2 low at staff was 3.6 alerts per patient-month on its own. In type
# 2 diabetes a low is rare and means too much insulin or sulfonylurea, often in an older
# patient (ADA Standards, section 13: avoid hypoglycaemia, de-intensify): staff see level 2 on
# CGM and any low a finger-prick confirms (D4 at either level). A CGM level 1 dip alone stays the
# patient's there too: sent to staff it was 5.7 alerts per type 2 patient-month on the hard
# cohort (sensor error and compression lows), for 24 true lows in 21 patient-months.
PATIENT_AT_IN: Mapping[str, tuple[frozenset[str], str]] = {
    "D2": (frozenset({"high"}), "diabetes_t1"),
    "D4": (frozenset({"medium", "high"}), "diabetes_t1"),
}
# Rules that go to the patient at these severities while the finding's value is below the
# limit. HF8's value is how well the worse answers of the daily form confirm each other (the
# larger of the items answered "worse" that day and the days in a row with a worse answer):
# one item on one day is a bad day more often than a decompensation (heart failure's largest
# staff load after missing data on the hard cohort: 1.36 alerts per patient-month, most in
# stable patients), so the patient is asked to answer again tomorrow and to call if worse;
# a second item or a second day reaches staff, and so does any worse answer with a weight
# gain (high). ESC HFA self-care (doi:10.1002/ejhf.2008): worsening symptoms are first the
# patient's to act on under their plan.
PATIENT_BELOW_VALUE: Mapping[str, tuple[frozenset[str], float]] = {
    "HF8": (frozenset({"medium"}), 2.0),
}
# Info findings the patient acts on: a gap to fix (staff see the low level), a first PEF in
# the yellow zone (the action plan is the patient's; staff see it once a second session confirms).
PATIENT_INFO_RULES = frozenset({"NODATA", "D10", "HF9", "A1"})

_RANK = {s.value: s.rank for s in Severity}

# Events whose recurrence after staff acknowledged them is a new clinical episode (a second
# hypoglycaemia, a second prolonged hyperglycaemia, is new information). Daily and 14-day
# metrics (glycaemic control, BP control) re-fire every day by construction, so they keep
# updating their one card. Hyperglycaemia splits only since brief post-meal highs go to
# the patient: while they reached staff, one open card swallowed the real episodes (D7
# found 49 % of type 1 episodes on the hard cohort).
EPISODIC_EVENTS = frozenset({EventType.HYPOGLYCAEMIA, EventType.HYPERGLYCAEMIA})


def event_type(rule_id: str, conditions: Iterable[str] = ()) -> EventType:
    """The event a rule's finding belongs to; NEWS2 in a COPD patient is part of an exacerbation."""
    if rule_id == "NEWS2" and "copd" in conditions:
        return EventType.COPD_EXACERBATION
    return EVENT_OF_RULE.get(rule_id, EventType.DETERIORATION)


def route(
    rule_id: str,
    severity: str,
    overrides: Mapping[str, str] | None = None,
    value: float | None = None,
    conditions: Iterable[str] = (),
) -> Route:
    """Who must act on a finding of this rule at this severity (and value, ``PATIENT_BELOW_VALUE``;
    and the patient's conditions, ``PATIENT_AT_IN``).

    ``overrides``: the care plan's ``routing`` entry (``{"<rule id>": "<route>"}``), e.g. to
    send D6 to staff for a patient who cannot act on it. Critical findings always reach
    staff (and the patient as well, see ``patient_message_for``), whatever the care plan says.
    """
    if severity == Severity.CRITICAL:
        return Route.STAFF
    if overrides and rule_id in overrides:
        return Route(overrides[rule_id])
    if rule_id in PATIENT_RULES or severity in PATIENT_AT.get(rule_id, ()):
        return Route.PATIENT
    when = PATIENT_AT_IN.get(rule_id)
    if when is not None and severity in when[0] and when[1] in conditions:
        return Route.PATIENT
    below = PATIENT_BELOW_VALUE.get(rule_id)
    if below is not None and value is not None and severity in below[0] and value < below[1]:
        return Route.PATIENT
    if severity == Severity.INFO:
        return Route.PATIENT if rule_id in PATIENT_INFO_RULES else Route.RECORD
    return Route.STAFF


@dataclass(frozen=True)
class PatientMessage:
    level: MessageLevel
    text_sv: str
    kind: str | None = None


CGM_KIND = "glucose_cgm"
# Short, fixed sentences: they are shown on a display and spoken by the gateway.
_MESSAGES_SV: Mapping[str, PatientMessage] = {
    "D5": PatientMessage(
        MessageLevel.MEASURE_AGAIN, "Ditt blodsocker sjunker. Kontrollera blodsockret nu.", "glucose_cgm"
    ),
    "D6": PatientMessage(
        MessageLevel.MEASURE_AGAIN, "Ditt blodsocker sjunker snabbt. Kontrollera blodsockret.", "glucose_cgm"
    ),
    "D1": PatientMessage(
        MessageLevel.MEASURE_AGAIN,
        "Ditt blodsocker är lågt. Ät eller drick något sött och kontrollera igen om 15 minuter.",
        "glucose_cgm",
    ),
    "D4": PatientMessage(
        MessageLevel.MEASURE_AGAIN,
        "Ditt blodsocker är lågt. Ät eller drick något sött och mät igen om 15 minuter.",
        "glucose_capillary",
    ),
    "D2": PatientMessage(
        MessageLevel.MEASURE_AGAIN,
        "Ditt blodsocker är mycket lågt. Ät eller drick något sött nu och kontrollera igen om 15 minuter.",
        "glucose_cgm",
    ),
    "D7": PatientMessage(
        MessageLevel.MEASURE_AGAIN,
        "Ditt blodsocker är högt. Följ din plan för högt blodsocker och kontrollera igen om en timme.",
        "glucose_cgm",
    ),
    "NODATA": PatientMessage(MessageLevel.REMINDER, "Kom ihåg dagens mätning."),
    "D10": PatientMessage(
        MessageLevel.REMINDER, "Glukosmätaren har inte skickat värden. Kontrollera sensorn.", "glucose_cgm"
    ),
    "HF9": PatientMessage(MessageLevel.REMINDER, "Kom ihåg att väga dig i morgon bitti.", "weight"),
    "HF8": PatientMessage(
        MessageLevel.CONTACT_CARE,
        "Du har svarat att du mår sämre. Svara på frågorna igen i morgon. Kontakta din mottagning om du blir sämre.",
    ),
    "A1": PatientMessage(
        MessageLevel.MEASURE_AGAIN, "Ditt PEF är i gula zonen. Följ din astmaplan och blås igen i kväll.", "spirometry"
    ),
}
# Spot values a repeat measurement can confirm or refute before staff are asked to look, with
# the severities that may wait for it (never critical). Home blood pressure is taken as the
# mean of repeated readings after rest (ESH 2023, NICE NG136): one high session is a reason to
# measure again, not yet to call. A single pulse or partial NEWS2 from one spot check is the
# same. Care plans switch rules on or off: ``thresholds.confirmation = {"H3": false}``, and
# set the window: ``{"within_min": 15}`` (0 turns confirmation off for the patient).
CONFIRMABLE: Mapping[str, frozenset[str]] = {
    "H3": frozenset({"high"}),
    "H5": frozenset({"medium"}),
    "HF5": frozenset({"medium", "high"}),
    "HF6": frozenset({"medium", "high"}),
    "C4": frozenset({"low"}),
    "NEWS2": frozenset({"high"}),
}
CONFIRM_WITHIN_MIN = 15.0
_MEASURE_AGAIN_SV: Mapping[str, PatientMessage] = {
    "blood_pressure": PatientMessage(
        MessageLevel.MEASURE_AGAIN, "Ditt blodtryck var avvikande. Vila i fem minuter och mät igen.", "blood_pressure"
    ),
    "pulse": PatientMessage(
        MessageLevel.MEASURE_AGAIN, "Din puls var avvikande. Vila i fem minuter och mät igen.", "blood_pressure"
    ),
    "any": PatientMessage(MessageLevel.MEASURE_AGAIN, "Dina värden var avvikande. Vila i fem minuter och mät igen."),
}
_MEASURE_AGAIN_OF_RULE = {"H3": "blood_pressure", "H5": "blood_pressure", "HF5": "blood_pressure", "HF6": "pulse"}
_MEASURE_AGAIN_OF_RULE |= {"C4": "pulse"}


def confirmable(members: Iterable[Finding], overrides: Mapping[str, bool] | None = None) -> bool:
    """Whether an event made of these findings waits for a repeat measurement before staff see it.

    Every finding must allow it: a real trend beside a spot value needs no repeat.
    """
    fs = list(members)
    if not fs:
        return False
    for f in fs:
        if f.severity == Severity.CRITICAL:
            return False
        allowed = overrides.get(f.rule_id) if overrides and f.rule_id in overrides else None
        if allowed is None:
            allowed = f.severity in CONFIRMABLE.get(f.rule_id, frozenset())
        if not allowed:
            return False
    return True


def repeat_series(rule_ids: Iterable[str]) -> tuple[str, ...]:
    """The measured series whose next reading is the repeat (a symptom answer is not)."""
    keys = {k for r in rule_ids if r in REGISTRY for k in REGISTRY[r].reads if not k.startswith("symptoms.")}
    return tuple(sorted(keys))


def measure_again_message(rule_ids: Iterable[str]) -> PatientMessage:
    kinds = {_MEASURE_AGAIN_OF_RULE.get(r, "any") for r in rule_ids}
    return _MEASURE_AGAIN_SV[kinds.pop() if len(kinds) == 1 else "any"]


CALL_1177_OR_112 = PatientMessage(
    MessageLevel.CALL_1177_OR_112,
    "Ditt värde är mycket avvikande. Ring 1177 för råd, eller 112 om du mår mycket dåligt.",
)


# Where the message depends on the severity as well.
_MESSAGES_AT_SV: Mapping[tuple[str, str], PatientMessage] = {
    ("D7", "medium"): PatientMessage(
        MessageLevel.MEASURE_AGAIN,
        "Ditt blodsocker har varit högt i flera timmar. Kontrollera ketoner och följ din plan för högt blodsocker.",
        "glucose_cgm",
    ),
}


def patient_message_for(rule_id: str, severity: str) -> PatientMessage | None:
    """What the patient is told about a finding (None: nothing)."""
    if severity == Severity.CRITICAL:
        return CALL_1177_OR_112
    return _MESSAGES_AT_SV.get((rule_id, severity)) or _MESSAGES_SV.get(rule_id)


def _event_evidence(event: EventType, members: Sequence[Finding], leading: Finding) -> dict[str, Any]:
    # The leading rule's evidence stays at the top level, so readers of a single rule's
    # evidence (thresholds, readings) keep working; every rule's evidence is under "rules".
    return {
        **leading.evidence,
        "event_type": event.value,
        "event_title": event.label_sv,
        "rules": [m.evidence for m in members],
    }


def group_events(
    findings: Sequence[Finding],
    conditions_of: Mapping[int, Iterable[str]] | None = None,
    companions: Sequence[Finding] = (),
) -> dict[tuple[int, EventType], Finding]:
    """One finding per (patient, event): the leading rule's, at the highest severity.

    The leading rule is the most severe, then the newest; the event's time is the newest
    occurrence of any of its rules, so an event lasting through several rules keeps updating;
    its ``since`` is the start of the newest of its rules' episodes.
    """

    def key_of(f: Finding) -> tuple[int, EventType]:
        return (f.patient, event_type(f.rule_id, (conditions_of or {}).get(f.patient, ())))

    groups: dict[tuple[int, EventType], list[Finding]] = defaultdict(list)
    for f in findings:
        groups[key_of(f)].append(f)
    # Findings routed elsewhere (the patient's) join an event's evidence, never its
    # severity or times: a forecast told to the patient does not make staff's card "high".
    extra: dict[tuple[int, EventType], list[Finding]] = defaultdict(list)
    for f in companions:
        if key_of(f) in groups:
            extra[key_of(f)].append(f)
    out: dict[tuple[int, EventType], Finding] = {}
    for key, members in groups.items():
        members.sort(key=lambda f: (_RANK[f.severity], f.at), reverse=True)
        leading = members[0]
        out[key] = Finding(
            patient=leading.patient,
            rule_id=leading.rule_id,
            severity=leading.severity,
            at=max(f.at for f in members),
            value=leading.value,
            # When the newest of its episodes began: a recurrence after the event had cleared
            # starts later than anything the open alert has seen (see lifecycle.py).
            since=max(f.since for f in members),
            make_evidence=partial(_event_evidence, key[1], (*members, *extra[key]), leading),
            newest_at=max(f.latest for f in members),
            first_at=min(f.earliest for f in members),
        )
    return out


def rules_of(event: EventType) -> tuple[str, ...]:
    return tuple(r for r, e in EVENT_OF_RULE.items() if e is event and r in REGISTRY)


def hysteresis_s(event: EventType) -> float:
    """How long an event must stay clear before resolution is suggested: its slowest rule's."""
    return max((REGISTRY[r].hysteresis_s for r in rules_of(event)), default=0.0)
