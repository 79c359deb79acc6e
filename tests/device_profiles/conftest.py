"""Shared helpers for the device_profiles tests (pure code: no services needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from device_profiles.wire import DeviceInfo

RECEIVED_AT = datetime(2026, 3, 15, 9, 0, 0, tzinfo=UTC)
DEVICE = DeviceInfo(address="C0:FF:EE:00:00:01", model="Test device", serial="SN-0001")


@pytest.fixture
def received_at() -> datetime:
    return RECEIVED_AT


@pytest.fixture
def device() -> DeviceInfo:
    return DEVICE
