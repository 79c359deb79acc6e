from __future__ import annotations

from collections.abc import Iterator

import pytest

from simulators.ble.radio import VirtualRadio, reset_radio


@pytest.fixture
def radio() -> Iterator[VirtualRadio]:
    """A fresh virtual radio for the test (the process's default radio)."""
    r = reset_radio()
    yield r
    r.clear()
