"""The other messages of the v1 contract: gateway status, gateway config, enrollment.

Status and config travel on MQTT (retained); enrollment is the HTTPS exchange between a
gateway's ``enroll`` command and the clinic API.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, HttpUrl

from device_profiles.wire import GATEWAY_ID_PATTERN

OFFLINE_PAYLOAD = b"offline"


class _Model(BaseModel):
    # No NaN or infinities (JSON 1e999 parses as infinity): a status must stay valid JSON in jsonb.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DeviceStatus(_Model):
    address: str = Field(max_length=64)
    model: str = Field(max_length=128)
    kind: str | None = Field(default=None, max_length=64)
    last_seen_at: AwareDatetime | None = None
    battery_pct: int | None = Field(default=None, ge=0, le=100)
    decode_errors: int = Field(default=0, ge=0)
    # Device clock minus gateway clock at the last read of its Current Time (None: never
    # read, or the clock was unset); additive, optional.
    clock_offset_s: float | None = None
    clock_unset: bool | None = None


class GatewayStatus(_Model):
    """Retained heartbeat on egenmon/v1/gw/{id}/status ("offline" is the last will instead)."""

    schema_: Literal[1] = Field(default=1, alias="schema")
    gateway_id: Annotated[str, Field(pattern=GATEWAY_ID_PATTERN)]
    state: Literal["online"] = "online"
    sent_at: AwareDatetime
    version: str = Field(max_length=32)
    uptime_s: float = Field(ge=0)
    outbox_depth: int = Field(ge=0)
    outbox_capacity: int = Field(ge=1)
    outbox_full: bool = False
    # Gateway clock minus a reference clock (NTP), when known.
    clock_offset_s: float | None = None
    # Kernel NTP state (adjtimex): None where the gateway cannot tell; additive, optional.
    clock_synchronised: bool | None = None
    clock_max_error_s: float | None = Field(default=None, ge=0)
    # Kinds whose latest scheduled measurement (GatewayConfig.schedule) was not taken; additive.
    overdue_kinds: list[str] = Field(default_factory=list, max_length=32)
    # Bluetooth scanner watchdog (additive): discovery restarts and adapter resets since the
    # gateway started, and when it last heard any advertisement.
    scanner_restarts: int = Field(default=0, ge=0)
    adapter_resets: int = Field(default=0, ge=0)
    last_advertisement_at: AwareDatetime | None = None
    devices: list[DeviceStatus] = Field(default_factory=list, max_length=64)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


class AllowedDevice(_Model):
    address: str = Field(max_length=64)
    model: str | None = Field(default=None, max_length=128)


class ScheduledMeasurement(_Model):
    """One scheduled kind; the reminder timing (additive) comes from the care plan, and a
    gateway without it uses its own settings."""

    kind: str = Field(max_length=64)
    times_local: list[str] = Field(default_factory=list, description="HH:MM, Europe/Stockholm")
    remind_after_min: int | None = Field(default=None, ge=0, le=1440)
    escalate_after_min: int | None = Field(default=None, ge=0, le=2880, description="0: never escalate")


class Feedback(_Model):
    """What the gateway tells the patient (LED/display/voice), e.g. after a critical alert."""

    level: Literal["none", "reminder", "contact_care", "call_1177_or_112"] = "none"
    message_sv: str | None = Field(default=None, max_length=280)


class DisplayLimit(_Model):
    """One limit for the gateway's own green/yellow/red display of a measured value.

    A value of ``component`` (``<kind>.<component>``, e.g. ``blood_pressure.systolic``)
    that is ``op`` ``value`` (``lt`` <, ``ge`` ≥, ``gt`` >) is shown as ``level``; the
    worst matching level wins, no match is green. These are the patient's limits after
    care-plan overrides (alerting/README.md, "Gateway config"); the platform's rules and
    its messages (measure again, call 1177) stay the decision, the display is a hint.
    """

    component: str = Field(max_length=64)
    level: Literal["yellow", "red"]
    op: Literal["lt", "ge", "gt"]
    value: float
    unit: str = Field(max_length=16)


def display_level(limits: list[DisplayLimit], component: str, value: float) -> Literal["green", "yellow", "red"]:
    """The display colour of one value under the config's limits."""
    level: Literal["green", "yellow", "red"] = "green"
    for lim in limits:
        if lim.component != component:
            continue
        hit = {"lt": value < lim.value, "ge": value >= lim.value, "gt": value > lim.value}[lim.op]
        if hit and (lim.level == "red" or level == "green"):
            level = lim.level
    return level


class GatewayConfig(_Model):
    """Retained config on egenmon/v1/gw/{id}/config, published by the platform.

    ``version`` (additive) is a hash of everything else: equal versions, equal configs.
    ``limits`` (additive) are the display limits of the assigned patient.
    """

    schema_: Literal[1] = Field(default=1, alias="schema")
    version: str | None = Field(default=None, max_length=64)
    allowed_devices: list[AllowedDevice] = Field(default_factory=list, max_length=64)
    schedule: list[ScheduledMeasurement] = Field(default_factory=list, max_length=32)
    feedback: Feedback = Field(default_factory=Feedback)
    limits: list[DisplayLimit] = Field(default_factory=list, max_length=32)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# Enrollment: POST {clinic_api}/api/v1/gateway-enrollment with EnrollmentRequest
# -> 200 EnrollmentResponse, 400/404/410 with {"detail": "..."} for a bad, unknown or
# used/expired code. The code is single use.
class EnrollmentRequest(_Model):
    code: str = Field(min_length=8, max_length=64)
    serial: str | None = Field(default=None, max_length=128)


class EnrollmentResponse(_Model):
    gateway_id: Annotated[str, Field(pattern=GATEWAY_ID_PATTERN)]
    mqtt_url: str = Field(description="mqtts://host:8883 outside the local demo")
    mqtt_username: str
    mqtt_password: str
    ca_cert_pem: str | None = None
    config_url: HttpUrl | None = None


def feedback_topic(gateway_id: str) -> str:
    """Platform → gateway: one message to the patient (QoS 1, not retained)."""
    return f"egenmon/v1/gw/{gateway_id}/feedback"


def feedback_ack_topic(gateway_id: str) -> str:
    """Gateway → platform: delivery/seen acknowledgements of feedback messages (QoS 1)."""
    return f"egenmon/v1/gw/{gateway_id}/feedback/ack"


class FeedbackMessage(_Model):
    """One message to the patient, on egenmon/v1/gw/{id}/feedback.

    ``level`` is a ``device_profiles.vocabulary.MessageLevel`` value; the gateway shows or
    says ``message_sv`` and ignores a message past ``expires_at``. ``kind`` names the
    measurement it concerns (for ``measure_again``, ``receipt`` and ``reminder``).
    """

    schema_: Literal[1] = Field(default=1, alias="schema")
    id: str = Field(min_length=1, max_length=64)
    level: Literal["receipt", "measure_again", "reminder", "contact_care", "call_1177_or_112"]
    message_sv: str = Field(min_length=1, max_length=280)
    kind: str | None = Field(default=None, max_length=64)
    created_at: AwareDatetime
    expires_at: AwareDatetime

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class FeedbackAck(_Model):
    """The gateway's acknowledgement of a FeedbackMessage: delivered to an output, or seen."""

    schema_: Literal[1] = Field(default=1, alias="schema")
    id: str = Field(min_length=1, max_length=64)
    state: Literal["delivered", "seen", "expired"]
    at: AwareDatetime

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
