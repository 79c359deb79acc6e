"""The tables the migrations create, by name (``schema/migrations/versions``).

SQL is written out where it is used; these constants are for the places that name a table
outside a statement (COPY targets, lists of tables, tests), so a rename is found by grep.
"""

from __future__ import annotations

# 0001: care organisation, patients and their plans
CARE_UNIT = "care_unit"
STAFF = "staff"
STAFF_UNIT = "staff_unit"
PATIENT = "patient"
PATIENT_IDENTITY = "patient_identity"  # the personal identity number, only the enrollment path touches it
CARE_PLAN = "care_plan"
# 0001: gateways and devices
GATEWAY = "gateway"
GATEWAY_ASSIGNMENT = "gateway_assignment"
ENROLLMENT_CODE = "enrollment_code"
DEVICE = "device"
# 0001: alerts, dead letters, audit
ALERT = "alert"
ALERT_EVENT = "alert_event"
DEAD_LETTER = "dead_letter"
AUDIT_LOG = "audit_log"  # append-only (a trigger refuses UPDATE/DELETE/TRUNCATE)
# 0001: the observation store (TimescaleDB hypertables when the extension is there)
OBSERVATION = "observation"
READING_RAW = "reading_raw"
# 0002-0005
ALERT_FINDING = "alert_finding"
PATIENT_MESSAGE = "patient_message"
REPLAY_REQUEST = "replay_request"
READING_KEY = "reading_key"
GATEWAY_CONFIG_STATE = "gateway_config_state"

# The sixteen tables of 0001, then those the later migrations add.
TABLES = (
    CARE_UNIT,
    STAFF,
    STAFF_UNIT,
    PATIENT,
    PATIENT_IDENTITY,
    CARE_PLAN,
    GATEWAY,
    GATEWAY_ASSIGNMENT,
    ENROLLMENT_CODE,
    DEVICE,
    ALERT,
    ALERT_EVENT,
    DEAD_LETTER,
    AUDIT_LOG,
    OBSERVATION,
    READING_RAW,
    ALERT_FINDING,
    PATIENT_MESSAGE,
    REPLAY_REQUEST,
    READING_KEY,
    GATEWAY_CONFIG_STATE,
)
# Hypertables on TimescaleDB (compressed after EGENMON_COMPRESS_AFTER), plain tables otherwise.
HYPERTABLES = (OBSERVATION, READING_RAW)
# Views every reader queries whichever the storage: a continuous aggregate or a plain view.
OBSERVATION_DAILY = "observation_daily"
CARE_PLAN_CURRENT = "care_plan_current"
VIEWS = (CARE_PLAN_CURRENT, OBSERVATION_DAILY)
