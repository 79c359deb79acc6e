"""Request bodies and a few response models of the API (pydantic)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from device_profiles.vocabulary import AlertStatus, Condition, Kind, Route, Severity


def no_nul(value: str) -> str:
    """PostgreSQL text cannot hold NUL, and lone surrogates cannot be encoded: a 422, not a 500."""
    if "\x00" in value:
        raise ValueError("text must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from err
    return value


SafeStr = Annotated[str, AfterValidator(no_nul)]
Role = Literal["nurse", "physician", "admin", "auditor"]
# The API's status and severity types are the vocabulary's enums (pydantic checks the values).
SeverityName = Severity
__all__ = ["AlertStatus", "SeverityName"]
_PNR = re.compile(r"^(\d{4})(\d{2})(\d{2})-?(\d{4})$")
# NaN and infinities are refused: they cannot be compared with a reading (and were a 500).
FiniteNumber = Annotated[float, Field(allow_inf_nan=False)]
RuleParams = dict[Annotated[SafeStr, Field(min_length=1, max_length=64)], bool | int | FiniteNumber | SafeStr]
# Rule ids (D1, HF4, NEWS2, NODATA) and the two non-rule entries alerting reads.
ThresholdKey = Annotated[str, Field(pattern=r"^([A-Z]{1,6}[0-9]{0,2}|routing|confirmation)$")]
ROUTES = frozenset(r.value for r in Route)
# A rule id alone (the proposal of a threshold replay names rules only).
RuleId = Annotated[str, Field(pattern=r"^[A-Z]{1,6}[0-9]{0,2}$")]
ParamName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
REPLAY_MAX_DAYS = 90
CONFIRM_MAX_MIN = 120


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CommentIn(_In):
    comment: SafeStr | None = Field(default=None, max_length=2000)


class RequiredCommentIn(_In):
    comment: SafeStr = Field(min_length=1, max_length=2000)


class SnoozeIn(_In):
    until: AwareDatetime
    comment: SafeStr | None = Field(default=None, max_length=2000)


# ResolutionReason's values that staff choose (the platform's not_confirmed and
# condition_cleared are not theirs to pick); the same list as queries.STAFF_RESOLUTION_REASONS.
StaffResolutionReason = Literal[
    "contacted_patient", "no_action_needed", "referred", "medication_changed", "device_problem", "measurement_error"
]


class ResolveIn(_In):
    reason: StaffResolutionReason = Field(description="why the alert is closed (structured, for follow-up)")
    comment: SafeStr | None = Field(default=None, max_length=2000)


class EscalateIn(_In):
    """To a named physician of the alert's unit (``to``) or to a role (``role``), with a reason."""

    to: uuid.UUID | None = None
    role: Literal["nurse", "physician"] | None = None
    reason: SafeStr = Field(min_length=1, max_length=2000)

    @model_validator(mode="after")
    def _one_recipient(self) -> EscalateIn:
        if (self.to is None) == (self.role is None):
            raise ValueError("give either 'to' (a physician's staff id) or 'role', not both")
        return self


class AssignIn(_In):
    to: uuid.UUID = Field(description="staff id of a nurse or physician of the alert's unit")
    comment: SafeStr | None = Field(default=None, max_length=2000)


class HandoverIn(_In):
    comment: SafeStr = Field(min_length=1, max_length=2000, description="the handover note")
    to: uuid.UUID | None = Field(default=None, description="optionally hand the alert to this colleague")


class ScheduleEntry(_In):
    per_day: int = Field(default=1, ge=1, le=48)
    times_local: list[Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]] = Field(
        default_factory=list, max_length=48
    )
    # The gateway's reminder for this kind: minutes after a scheduled time with no reading,
    # and when it becomes "ring din mottagning" (0: never). Unset: the gateway's defaults.
    remind_after_min: int | None = Field(default=None, ge=0, le=1440)
    escalate_after_min: int | None = Field(default=None, ge=0, le=2880)


class CarePlanIn(_In):
    conditions: list[Condition] = Field(default_factory=list, max_length=6)
    # Rule parameter overrides by rule id (e.g. {"HF1": {"gain_kg": 1.5}}), read by alerting.
    # "routing": {"D6": "staff"} sends a rule to another route; "confirmation":
    # {"within_min": 15, "H3": false} sets the repeat-measurement window and per-rule switches.
    thresholds: dict[ThresholdKey, RuleParams] = Field(default_factory=dict)
    schedule: dict[Kind, ScheduleEntry] = Field(default_factory=dict)
    dry_weight_kg: float | None = Field(default=None, ge=20, le=350)
    personal_best_pef: float | None = Field(default=None, ge=50, le=900)
    spo2_target: Literal["standard", "hypercapnic"] = "standard"
    notes: SafeStr | None = Field(default=None, max_length=4000)

    @model_validator(mode="after")
    def _special_entries(self) -> CarePlanIn:
        for rule_id, route in self.thresholds.get("routing", {}).items():
            if route not in ROUTES:
                raise ValueError(f"routing of {rule_id} must be one of {sorted(ROUTES)}")
        for name, value in self.thresholds.get("confirmation", {}).items():
            if name == "within_min":
                if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= CONFIRM_MAX_MIN:
                    raise ValueError(f"confirmation.within_min must be a number of minutes, 0 to {CONFIRM_MAX_MIN}")
            elif not isinstance(value, bool):
                raise ValueError(f"confirmation.{name} must be true or false")
        return self


class ReplayIn(_In):
    """Proposed thresholds to replay over a unit's last ``days`` days (alerting checks the
    rule ids and parameter names against its registry and fails the request otherwise)."""

    days: int = Field(ge=1, le=REPLAY_MAX_DAYS)
    condition: Condition | None = None
    # Numbers only, finite, never booleans (a replay compares them with readings).
    proposal: dict[RuleId, dict[ParamName, Annotated[float, Field(strict=True, allow_inf_nan=False)]]] = Field(
        default_factory=dict, max_length=20
    )

    @field_validator("proposal")
    @classmethod
    def _no_empty_rule(cls, v: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for rule_id, params in v.items():
            if not params:
                raise ValueError(f"{rule_id}: name at least one parameter")
            if len(params) > 16:
                raise ValueError(f"{rule_id}: at most 16 parameters")
        return v


def check_personnummer(value: str) -> str:
    """YYYYMMDD-NNNN with a valid date and Luhn check digit; returns the hyphenated form."""
    m = _PNR.match(value)
    if not m:
        raise ValueError("personnummer must look like YYYYMMDD-NNNN")
    year, month, day, tail = m.groups()
    day_i = int(day)
    # Samordningsnummer add 60 to the day.
    if day_i > 60:
        day_i -= 60
    try:
        dt.date(int(year), int(month), day_i)
    except ValueError as err:
        raise ValueError("personnummer has an impossible date") from err
    digits = year[2:] + month + day + tail
    total = 0
    for i, ch in enumerate(digits):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    if total % 10 != 0:
        raise ValueError("personnummer check digit is wrong")
    return f"{year}{month}{day}-{tail}"


class PatientIn(_In):
    personnummer: str = Field(description="Skatteverket test number in tests and demos, YYYYMMDD-NNNN")
    display_name: SafeStr = Field(min_length=1, max_length=200)
    unit_id: uuid.UUID
    care_plan: CarePlanIn | None = None

    @field_validator("personnummer")
    @classmethod
    def _pnr(cls, v: str) -> str:
        return check_personnummer(v)


class GatewayAssignIn(_In):
    gateway_id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{2,62}$")


# Broker user names of the services, and the prefix of their client ids: a gateway's user
# name and client id are its id (deploy/mosquitto), so a gateway named so would share the
# services' ACL rights or take over their sessions. issue-gateway-credentials.sh refuses
# them too.
RESERVED_GATEWAY_IDS = frozenset({"ingest", "platform"})
RESERVED_GATEWAY_PREFIX = "egenmon-"


class GatewayIn(_In):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{2,62}$")
    serial: SafeStr | None = Field(default=None, min_length=1, max_length=128)

    @field_validator("id")
    @classmethod
    def _not_a_service_account(cls, v: str) -> str:
        if v in RESERVED_GATEWAY_IDS or v.startswith(RESERVED_GATEWAY_PREFIX):
            raise ValueError(
                f"{v!r} is reserved for the platform's services (ingest, platform, egenmon-*);"
                " choose another gateway id"
            )
        return v


class UnitIn(_In):
    code: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")
    name: SafeStr = Field(min_length=1, max_length=200)


class StaffIn(_In):
    subject: SafeStr = Field(min_length=1, max_length=200)
    display_name: SafeStr = Field(min_length=1, max_length=200)
    roles: list[Role] = Field(min_length=1, max_length=4)
    unit_ids: list[uuid.UUID] = Field(default_factory=list, max_length=50)


class StaffUpdateIn(_In):
    """Roles and care units replace the old ones; ``active`` is left as it is when omitted."""

    roles: list[Role] = Field(min_length=1, max_length=4)
    unit_ids: list[uuid.UUID] = Field(default_factory=list, max_length=50)
    active: bool | None = None


class EnrollmentCodeOut(BaseModel):
    code: str
    gateway_id: str
    expires_at: dt.datetime
