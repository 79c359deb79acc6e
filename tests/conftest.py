"""Shared test plumbing: real PostgreSQL and Mosquitto (see tests/README.md), and Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest_plugins = ["tests.fixtures.db", "tests.fixtures.mqtt"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium (tests/chromium.py), one per test module."""
    from tests.chromium import launch  # noqa: PLC0415 - Playwright only for the browser tests

    with launch() as b:
        yield b
