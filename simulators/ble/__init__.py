"""A virtual BLE radio for egenmon: bleak backend classes over in-process virtual devices.

Hand the gateway ``simulators.ble.backend:VirtualScanner`` and
``simulators.ble.backend:VirtualClient`` as its bleak backends; tests control the devices
through :func:`simulators.ble.process_radio.default_radio`. A separate process is configured with a
JSON scenario file named by ``EGENMON_SIM_BLE_SCENARIO`` (see :mod:`simulators.ble.scenario`).
"""
