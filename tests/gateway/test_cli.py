"""The CLI over the virtual radio: scan, pair, devices, unpair, status; config file + env."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from device_profiles.messages import DeviceStatus, GatewayStatus
from gateway import cli
from gateway.cli import app
from gateway.settings import load_settings
from simulators.ble.devices import BloodPressureCuff, GlucoseMeter
from simulators.ble.radio import VirtualRadio
from tests.gateway.helpers import CLIENT, SCANNER


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    # The test's terminal is narrow; tables would elide the columns asserted on.
    monkeypatch.setattr(cli.console, "width", 200)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(
        f'gateway_id = "gw-cli-1"\nstate_dir = "{tmp_path / "state"}"\nmqtt_url = "mqtt://127.0.0.1:1"\n'
        f'ble_scanner_backend = "{SCANNER}"\nble_client_backend = "{CLIENT}"\n'
    )
    return path


def test_config_file_with_environment_override(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EGENMON_GATEWAY_HEARTBEAT_S", "7.5")
    s = load_settings(config)
    assert s.gateway_id == "gw-cli-1"
    assert s.heartbeat_s == 7.5
    monkeypatch.setenv("EGENMON_GATEWAY_GATEWAY_ID", "gw-from-env")
    assert load_settings(config).gateway_id == "gw-from-env"


def test_scan_pair_devices_unpair(radio: VirtualRadio, config: Path) -> None:
    cuff = radio.add(BloodPressureCuff.create())
    cuff.advertising = True
    meter = radio.add(GlucoseMeter.create())
    meter.advertising = True
    runner = CliRunner()
    scan = runner.invoke(app, ["scan", "-c", str(config), "--seconds", "0.3"])
    assert scan.exit_code == 0, scan.output
    assert cuff.address in scan.output
    assert "sig.blood_pressure" in scan.output
    assert "sig.glucose" in scan.output

    paired = runner.invoke(app, ["pair", meter.address, "-c", str(config), "--seconds", "0.3"])
    assert paired.exit_code == 0, paired.output
    assert meter.bonded
    listing = runner.invoke(app, ["devices", "-c", str(config)])
    assert meter.address in listing.output
    assert "yes" in listing.output

    assert runner.invoke(app, ["unpair", meter.address, "-c", str(config)]).exit_code == 0
    listing = runner.invoke(app, ["devices", "-c", str(config)])
    assert "no" in listing.output

    missing = runner.invoke(app, ["pair", "F0:00:00:00:99:99", "-c", str(config), "--seconds", "0.2"])
    assert missing.exit_code == 1
    assert "not seen" in missing.output


def test_status_without_a_running_gateway(config: Path) -> None:
    result = CliRunner().invoke(app, ["status", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert "gw-cli-1" in result.output
    assert "waiting to be sent: 0" in result.output


def test_run_refuses_without_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EGENMON_GATEWAY_STATE_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["run"])
    assert result.exit_code == 1
    assert "enroll" in result.output


def test_status_shows_clock_health_and_overdue_measurements(config: Path) -> None:
    state = config.parent / "state"
    state.mkdir(parents=True, exist_ok=True)
    doc = GatewayStatus(
        gateway_id="gw-cli-1",
        sent_at=datetime(2026, 11, 25, 9, 0, tzinfo=UTC),
        version="0",
        uptime_s=5,
        outbox_depth=0,
        outbox_capacity=10,
        clock_offset_s=-0.0125,
        clock_synchronised=True,
        clock_max_error_s=0.25,
        overdue_kinds=["weight"],
        devices=[DeviceStatus(address="F0:00:00:00:00:01", model="m", kind="blood_pressure", clock_offset_s=-450.2)],
    )
    (state / "status.json").write_text(doc.model_dump_json(by_alias=True))
    result = CliRunner().invoke(app, ["status", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert "Clock: synchronised, offset -0.013 s, max error 0.250 s" in result.output
    assert "Overdue measurements: weight" in result.output
    assert "clock -450 s" in result.output


def test_scan_and_pair_without_bluez_say_so_in_one_line(tmp_path: Path) -> None:
    """The real BlueZ backend with no system bus to reach (as with bluetoothd stopped)."""
    import os  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).parents[2]),
        "EGENMON_GATEWAY_STATE_DIR": str(tmp_path),
        "EGENMON_GATEWAY_BLE_SCANNER_BACKEND": "",
        "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={tmp_path / 'no-such-bus'}",
        "COLUMNS": "80",
    }
    for args in (["scan", "--seconds", "0.5"], ["pair", "AA:BB:CC:DD:EE:FF", "--seconds", "0.5"]):
        proc = subprocess.run(
            [sys.executable, "-m", "gateway", *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        out = proc.stdout + proc.stderr
        assert proc.returncode == 3, out
        assert "Bluetooth is not available (is bluetoothd running?)" in out
        assert "Traceback" not in out
        assert len(out.splitlines()) <= 3, out


def test_scan_with_an_adapter_that_errors(radio: VirtualRadio, config: Path) -> None:
    radio.scan_start_errors = 1
    res = CliRunner().invoke(app, ["scan", "-c", str(config), "--seconds", "0.2"])
    assert res.exit_code == 3
    assert "Bluetooth is not available (is bluetoothd running?)" in res.output
    assert "NotReady" in res.output


def test_devices_prints_whole_addresses_on_a_narrow_terminal(
    radio: VirtualRadio, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.outbox import Outbox  # noqa: PLC0415

    s = load_settings(config)
    ob = Outbox(s.db_path)
    ob.set_paired("F0:00:00:00:00:2A", "sig.blood_pressure", True)
    ob.set_user_index("F0:00:00:00:00:2A", 2)
    ob.close()
    monkeypatch.setattr(cli.console, "width", 40)
    res = CliRunner().invoke(app, ["devices", "-c", str(config)])
    assert res.exit_code == 0, res.output
    assert "F0:00:00:00:00:2A" in res.output
    # The address can be given to unpair as printed.
    assert CliRunner().invoke(app, ["unpair", "F0:00:00:00:00:2A", "-c", str(config)]).exit_code == 0


def test_enroll_serial_has_help_and_hints_name_the_installed_command() -> None:
    import tomllib  # noqa: PLC0415

    help_text = CliRunner().invoke(app, ["enroll", "--help"], env={"COLUMNS": "200"}).output
    assert "hardware serial number" in help_text
    scripts = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["egenmon-gateway"] == "gateway.cli:app"
    readme = (Path(__file__).parents[2] / "gateway" / "README.md").read_text()
    assert "python -m gateway " not in readme
    assert "egenmon-gateway pair" in readme
    assert "egenmon-gateway pair" in Path(cli.__file__).read_text()
