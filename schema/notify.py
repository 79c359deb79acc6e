"""The NOTIFY contract between ingest and alerting.

After each commit that stored readings, ingest sends ``NOTIFY egenmon_new_readings`` with
the payload ``{"patients": ["<uuid>", ...]}`` (compact JSON, ids sorted). PostgreSQL refuses
payloads of 8000 bytes or more; the contract keeps each below ``NOTIFY_MAX_BYTES`` and sends
a longer list as several notifications. Alerting LISTENs on the channel and evaluates the
named patients; the periodic sweep catches whatever a lost notification missed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

NEW_READINGS_CHANNEL = "egenmon_new_readings"

# NOTIFY payloads must stay below 8000 bytes; the contract says at most 7,000.
NOTIFY_MAX_BYTES = 7000

_EMPTY = len('{"patients":[]}')


def encode_new_readings(patients: Iterable[object]) -> list[str]:
    """The payloads naming ``patients`` (uuids or their strings), each at most NOTIFY_MAX_BYTES."""
    payloads: list[str] = []
    chunk: list[str] = []
    size = _EMPTY
    for p in sorted({str(p) for p in patients}):
        item = len(json.dumps(p)) + 1  # quoted and escaped (ASCII), and a comma
        if chunk and size + item > NOTIFY_MAX_BYTES:
            payloads.append(_payload(chunk))
            chunk, size = [], _EMPTY
        chunk.append(p)
        size += item
    if chunk:
        payloads.append(_payload(chunk))
    return payloads


def decode_new_readings(payload: str) -> list[str]:
    """The patient ids a payload names; ValueError when it is not the contract's shape."""
    try:
        data = json.loads(payload)
    except ValueError as err:
        raise ValueError(f"not JSON: {err}") from None
    if not isinstance(data, dict) or "patients" not in data:
        raise ValueError("no 'patients' key")
    patients = data["patients"]
    if not isinstance(patients, list):
        raise ValueError("patients is not a list")
    return [str(p) for p in patients]


def _payload(patients: list[str]) -> str:
    return json.dumps({"patients": patients}, separators=(",", ":"))
