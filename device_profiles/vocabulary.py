"""The observation vocabulary: kinds, their components, stored units, codes, plausibility.

Everything downstream (ingest validation, the rules engine, the clinic pages, FHIR export)
reads these tables; nothing else in the project may spell a unit or a LOINC code.
Plausibility ranges come from CLINICAL_RULES.md, "Plausibility (reject, keep for audit)".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """What was measured. One reading has one kind and one or more components."""

    BLOOD_PRESSURE = "blood_pressure"
    GLUCOSE_CAPILLARY = "glucose_capillary"
    GLUCOSE_CGM = "glucose_cgm"
    WEIGHT = "weight"
    BODY_COMPOSITION = "body_composition"
    SPO2 = "spo2"
    TEMPERATURE = "temperature"
    SPIROMETRY = "spirometry"
    SYMPTOMS = "symptoms"


class Unit(StrEnum):
    """Stored units (UCUM codes). Devices' own units are converted on the gateway."""

    MMHG = "mm[Hg]"
    BPM = "/min"
    MMOL_L = "mmol/L"
    KG = "kg"
    KG_M2 = "kg/m2"
    CM = "cm"
    PERCENT = "%"
    CEL = "Cel"
    L_MIN = "L/min"
    LITRE = "L"
    SCORE = "{score}"
    COUNT = "{count}"


@dataclass(frozen=True, slots=True)
class Component:
    """One named value of a reading, e.g. the systolic pressure of a BP measurement."""

    name: str
    unit: Unit
    loinc: str | None
    loinc_display: str
    # Plausibility: values outside [low, high] are stored but flagged rejected.
    plausible_low: float
    plausible_high: float
    # IEEE 11073-10101 nomenclature code (MDC), where one exists.
    mdc: int | None = None


# LOINC codes: the ones used by the Continua/PCHA guidelines and the HL7 Personal Health
# Device IG. Components without an established code carry None and are exported with a
# local code system only.
COMPONENTS: dict[str, Component] = {
    c.name: c
    for c in (
        Component("systolic", Unit.MMHG, "8480-6", "Systolic blood pressure", 50, 300, 150021),
        Component("diastolic", Unit.MMHG, "8462-4", "Diastolic blood pressure", 20, 200, 150022),
        Component("mean_arterial", Unit.MMHG, "8478-0", "Mean blood pressure", 25, 250, 150023),
        Component("pulse", Unit.BPM, "8867-4", "Heart rate", 25, 250, 149546),
        Component(
            "glucose",
            Unit.MMOL_L,
            "14743-9",
            "Glucose [Moles/volume] in Capillary blood by Glucometer",
            1.1,
            33.3,
            160196,
        ),
        Component(
            "glucose_interstitial",
            Unit.MMOL_L,
            "105272-9",
            "Glucose [Moles/volume] in Interstitial fluid",
            1.1,
            33.3,
        ),
        Component("weight", Unit.KG, "29463-7", "Body weight", 20, 350, 188736),
        Component("bmi", Unit.KG_M2, "39156-5", "Body mass index (BMI) [Ratio]", 8, 100, 188752),
        Component("height", Unit.CM, "8302-2", "Body height", 50, 250, 188740),
        Component("body_fat", Unit.PERCENT, "41982-0", "Percentage of body fat Measured", 1, 80),
        Component(
            "spo2",
            Unit.PERCENT,
            "59408-5",
            "Oxygen saturation in Arterial blood by Pulse oximetry",
            50,
            100,
            150456,
        ),
        Component("temperature", Unit.CEL, "8310-5", "Body temperature", 30, 45, 150364),
        Component(
            "pef",
            Unit.L_MIN,
            "19935-6",
            "Maximum expiratory gas flow Respiratory system airway by Peak flow meter",
            50,
            900,
        ),
        Component("fev1", Unit.LITRE, "20150-9", "FEV1", 0.2, 8),
        Component("fvc", Unit.LITRE, "19870-5", "Forced vital capacity [Volume] Respiratory system", 0.2, 10),
        # Patient-reported items (daily symptom form, CAT, reliever use): 0/1 "worse than
        # usual" items unless stated. CAT total is 0-40 (LOINC 89267-9 is not in the PHD IG;
        # kept local).
        Component("breathlessness_worse", Unit.SCORE, None, "More breathless than usual", 0, 1),
        Component("orthopnoea", Unit.SCORE, None, "Breathless lying flat", 0, 1),
        Component("oedema_worse", Unit.SCORE, None, "More swelling of legs than usual", 0, 1),
        Component("sputum_volume_worse", Unit.SCORE, None, "More sputum than usual", 0, 1),
        Component("sputum_purulence_worse", Unit.SCORE, None, "Sputum more coloured", 0, 1),
        Component(
            "hypertensive_symptoms",
            Unit.SCORE,
            None,
            "Severe headache, chest pain, breathlessness, visual or neurological symptoms",
            0,
            1,
        ),
        Component("cat_score", Unit.SCORE, None, "COPD Assessment Test total score", 0, 40),
        Component("reliever_puffs", Unit.COUNT, None, "Reliever inhaler puffs per day", 0, 100),
    )
}


@dataclass(frozen=True, slots=True)
class KindSpec:
    kind: Kind
    required: tuple[str, ...]
    optional: tuple[str, ...]
    loinc_panel: str | None
    display: str

    @property
    def components(self) -> tuple[str, ...]:
        return self.required + self.optional


KINDS: dict[Kind, KindSpec] = {
    s.kind: s
    for s in (
        KindSpec(
            Kind.BLOOD_PRESSURE,
            ("systolic", "diastolic"),
            ("mean_arterial", "pulse"),
            "85354-9",
            "Blodtryck",
        ),
        KindSpec(Kind.GLUCOSE_CAPILLARY, ("glucose",), (), None, "P-glukos (kapillärt)"),
        KindSpec(Kind.GLUCOSE_CGM, ("glucose_interstitial",), (), None, "Glukos (CGM)"),
        KindSpec(Kind.WEIGHT, ("weight",), ("bmi", "height"), None, "Vikt"),
        KindSpec(Kind.BODY_COMPOSITION, ("body_fat",), ("weight", "bmi", "height"), None, "Kroppssammansättning"),
        KindSpec(Kind.SPO2, ("spo2",), ("pulse",), None, "Syremättnad"),
        KindSpec(Kind.TEMPERATURE, ("temperature",), (), None, "Kroppstemperatur"),
        KindSpec(Kind.SPIROMETRY, (), ("pef", "fev1", "fvc"), None, "Spirometri / PEF"),
        KindSpec(
            Kind.SYMPTOMS,
            (),
            (
                "breathlessness_worse",
                "orthopnoea",
                "oedema_worse",
                "sputum_volume_worse",
                "sputum_purulence_worse",
                "hypertensive_symptoms",
                "cat_score",
                "reliever_puffs",
            ),
            None,
            "Symtom",
        ),
    )
}

# SpO2 50-69 % is kept but flagged: below the validated range of oximeters (ISO 80601-2-61).
SPO2_VALIDATED_LOW = 70.0
# Weight: a change larger than this from the previous day is likely another person.
WEIGHT_MAX_DAILY_CHANGE_KG = 5.0
# Blood pressure cross-component checks.
BP_MIN_PULSE_PRESSURE_MMHG = 10.0


class Condition(StrEnum):
    """Conditions a care plan can enrol a patient for."""

    DIABETES_T1 = "diabetes_t1"
    DIABETES_T2 = "diabetes_t2"
    HEART_FAILURE = "heart_failure"
    COPD = "copd"
    ASTHMA = "asthma"
    HYPERTENSION = "hypertension"


class Severity(StrEnum):
    """How urgent a finding is; declared from least to most urgent (``rank`` is that order).

    The one spelling of severity: the rules' integer ranks, the engine's names, the
    lifecycle's escalation test, the clinic's API types, SQL ordering and Swedish labels all
    derive from this enum.
    """

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]

    @property
    def label_sv(self) -> str:
        return _SEVERITY_LABEL_SV[self]


_SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}
_SEVERITY_LABEL_SV = {
    Severity.INFO: "Info",
    Severity.LOW: "Låg",
    Severity.MEDIUM: "Medel",
    Severity.HIGH: "Hög",
    Severity.CRITICAL: "Kritisk",
}


def severity_rank_sql(column: str) -> str:
    """A SQL expression ranking ``column`` (a severity name) as ``Severity.rank`` does.

    Unknown names rank below ``info`` (-1), so they sort last in descending order.
    """
    whens = " ".join(f"WHEN '{s.value}' THEN {s.rank}" for s in Severity)
    return f"CASE {column} {whens} ELSE -1 END"


class EventType(StrEnum):
    """Clinical events: what one staff-facing alert is about (the rules of one family feed it).

    The label is the Swedish title shown to staff and, where it reaches them, patients.
    """

    HYPOGLYCAEMIA = "hypoglycaemia"
    HYPERGLYCAEMIA = "hyperglycaemia"
    GLYCAEMIC_CONTROL = "glycaemic_control"
    FLUID_RETENTION = "fluid_retention"
    HYPOTENSION = "hypotension"
    BP_CRISIS = "bp_crisis"
    BP_CONTROL = "bp_control"
    PULSE = "pulse"
    HYPOXAEMIA = "hypoxaemia"
    COPD_EXACERBATION = "copd_exacerbation"
    ASTHMA_EXACERBATION = "asthma_exacerbation"
    HF_SYMPTOMS = "hf_symptoms"
    DETERIORATION = "deterioration"
    MISSING_DATA = "missing_data"
    DEVICE_PROBLEM = "device_problem"
    GATEWAY_OFFLINE = "gateway_offline"

    @property
    def label_sv(self) -> str:
        return _EVENT_LABEL_SV[self]


_EVENT_LABEL_SV = {
    EventType.HYPOGLYCAEMIA: "Lågt blodsocker",
    EventType.HYPERGLYCAEMIA: "Högt blodsocker",
    EventType.GLYCAEMIC_CONTROL: "Glukoskontroll (14 dagar)",
    EventType.FLUID_RETENTION: "Vätskeansamling / viktuppgång",
    EventType.HYPOTENSION: "Lågt blodtryck",
    EventType.BP_CRISIS: "Mycket högt blodtryck",
    EventType.BP_CONTROL: "Blodtryck över målet",
    EventType.PULSE: "Avvikande puls",
    EventType.HYPOXAEMIA: "Låg syremättnad",
    EventType.COPD_EXACERBATION: "KOL-försämring",
    EventType.ASTHMA_EXACERBATION: "Astmaförsämring",
    EventType.HF_SYMPTOMS: "Hjärtsviktssymtom",
    EventType.DETERIORATION: "Allmän försämring (partiell NEWS2)",
    EventType.MISSING_DATA: "Uteblivna mätningar",
    EventType.DEVICE_PROBLEM: "Mätarproblem",
    EventType.GATEWAY_OFFLINE: "Hemenheten är offline",
}


class Route(StrEnum):
    """Who must act on a finding: the monitoring team, the patient, technical support, or nobody."""

    STAFF = "staff"
    PATIENT = "patient"
    TECHNICAL = "technical"
    RECORD = "record"


class AlertStatus(StrEnum):
    """Alert statuses; ``awaiting_confirmation`` is hidden from staff until a repeat confirms it.

    ``TRANSITIONS`` is the lifecycle of alerting/README.md: the platform's moves (a repeat
    confirms or clears a spot value, a snooze ends, an escalation reopens an acknowledged
    alert, a cleared condition resolves) and the staff actions of clinic_api (acknowledge,
    snooze, resolve from any non-resolved status; undo a resolution back to the status it had).
    """

    AWAITING_CONFIRMATION = "awaiting_confirmation"
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"

    @property
    def label_sv(self) -> str:
        return _STATUS_LABEL_SV[self]

    @property
    def transitions(self) -> frozenset[AlertStatus]:
        """The statuses an alert in this status may move to."""
        return TRANSITIONS[self]

    def may_become(self, target: AlertStatus) -> bool:
        return target in TRANSITIONS[self]


_STATUS_LABEL_SV = {
    AlertStatus.AWAITING_CONFIRMATION: "Väntar på ommätning",
    AlertStatus.OPEN: "Öppet",
    AlertStatus.ACKNOWLEDGED: "Kvitterat",
    AlertStatus.SNOOZED: "Vilande",
    AlertStatus.RESOLVED: "Avslutat",
}
_A = AlertStatus
TRANSITIONS: dict[AlertStatus, frozenset[AlertStatus]] = {
    # The repeat confirms (open) or is normal (resolved as not confirmed); staff may act on
    # it before the repeat arrives.
    _A.AWAITING_CONFIRMATION: frozenset({_A.OPEN, _A.ACKNOWLEDGED, _A.SNOOZED, _A.RESOLVED}),
    _A.OPEN: frozenset({_A.ACKNOWLEDGED, _A.SNOOZED, _A.RESOLVED}),
    # An escalation in severity reopens an acknowledged alert.
    _A.ACKNOWLEDGED: frozenset({_A.OPEN, _A.SNOOZED, _A.RESOLVED}),
    # The snooze ends (open again) or staff act before it does.
    _A.SNOOZED: frozenset({_A.OPEN, _A.ACKNOWLEDGED, _A.RESOLVED}),
    # Undoing a resolution puts back the status the alert had.
    _A.RESOLVED: frozenset({_A.AWAITING_CONFIRMATION, _A.OPEN, _A.ACKNOWLEDGED, _A.SNOOZED}),
}
del _A


class ResolutionReason(StrEnum):
    """Why staff closed an alert (structured, for analytics), or why the platform did."""

    CONTACTED_PATIENT = "contacted_patient"
    NO_ACTION_NEEDED = "no_action_needed"
    REFERRED = "referred"
    MEDICATION_CHANGED = "medication_changed"
    DEVICE_PROBLEM = "device_problem"
    MEASUREMENT_ERROR = "measurement_error"
    NOT_CONFIRMED = "not_confirmed"  # the platform: the repeat measurement was normal
    CONDITION_CLEARED = "condition_cleared"


class MessageLevel(StrEnum):
    """What a message to the patient asks of them (the gateway's feedback contract)."""

    RECEIPT = "receipt"
    MEASURE_AGAIN = "measure_again"
    REMINDER = "reminder"
    CONTACT_CARE = "contact_care"
    CALL_1177_OR_112 = "call_1177_or_112"
