"""Request bodies and a few response models of the API (pydantic)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from device_profiles.vocabulary import Condition, Kind, Route


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
AlertStatus = Literal["open", "acknowledged", "snoozed", "resolved"]
SeverityName = Literal["info", "low", "medium", "high", "critical"]
_PNR = re.compile(r"^(\d{4})(\d{2})(\d{2})-?(\d{4})$")
# NaN and infinities are refused: they cannot be compared with a reading (and were a 500).
FiniteNumber = Annotated[float, Field(allow_inf_nan=False)]
RuleParams = dict[Annotated[SafeStr, Field(min_length=1, max_length=64)], bool | int | FiniteNumber | SafeStr]
# Rule ids (D1, HF4, NEWS2, NODATA) and the two non-rule entries alerting reads.
ThresholdKey = Annotated[str, Field(pattern=r"^([A-Z]{1,6}[0-9]{0,2}|routing|confirmation)$")]
ROUTES = frozenset(r.value for r in Route)
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


class ScheduleEntry(_In):
    per_day: int = Field(default=1, ge=1, le=48)
    times_local: list[Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]] = Field(
        default_factory=list, max_length=48
    )


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


class GatewayIn(_In):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{2,62}$")
    serial: SafeStr | None = Field(default=None, min_length=1, max_length=128)


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
