"""The process's one virtual radio, filled from the scenario file when one is configured.

Kept apart from ``radio`` (the radio itself) and ``scenario`` (what fills it) so that
neither of those imports the other's importer: radio ← scenario ← process_radio.
"""

from __future__ import annotations

from simulators.ble.radio import VirtualRadio
from simulators.ble.scenario import load_scenario_from_env

_RADIO: VirtualRadio | None = None


def default_radio() -> VirtualRadio:
    """The process's radio; filled from the scenario file when one is configured."""
    global _RADIO  # noqa: PLW0603 - one radio per process, like one Bluetooth adapter
    if _RADIO is None:
        _RADIO = VirtualRadio()
        load_scenario_from_env(_RADIO)
    return _RADIO


def reset_radio() -> VirtualRadio:
    global _RADIO  # noqa: PLW0603
    _RADIO = VirtualRadio()
    return _RADIO
