"""The gateway's command line, installed as ``egenmon-gateway`` ([project.scripts]; the
name every document uses). ``python -m gateway`` runs the same app."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Column, Table

from device_profiles.logs import configure
from gateway.errors import GatewayError
from gateway.settings import GatewaySettings, load_settings

app = typer.Typer(help="egenmon home gateway: reads BLE health devices and sends the readings to the clinic.")
console = Console()

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file", envvar="EGENMON_GATEWAY_CONFIG")
]


NO_BLUETOOTH = "Bluetooth is not available (is bluetoothd running?)"


def _no_bluetooth(err: BaseException) -> typer.Exit:
    """One line instead of a traceback: the usual cause on a Pi is a stopped bluetoothd."""
    console.print(f"[red]{NO_BLUETOOTH}[/red]", highlight=False)
    console.print(f"Detail: {err}", highlight=False, soft_wrap=True)
    return typer.Exit(3)


def _configure_logging(verbose: bool) -> None:
    configure(logging.DEBUG if verbose else logging.INFO)


def _settings(config: Path | None) -> GatewaySettings:
    try:
        return load_settings(config)
    except (OSError, ValueError) as err:
        console.print(f"[red]Configuration problem:[/red] {err}")
        raise typer.Exit(2) from err


@app.command()
def run(config: ConfigOpt = None, verbose: bool = False) -> None:
    """Run the gateway: scan, read devices, publish readings (what systemd starts)."""
    _configure_logging(verbose)
    from gateway.service import Gateway  # noqa: PLC0415 - keep `--help` fast

    settings = _settings(config)
    try:
        gw = Gateway(settings)
    except GatewayError as err:
        console.print(f"[red]{err}[/red]")
        raise typer.Exit(1) from err

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, gw.request_stop)
        await gw.run()

    asyncio.run(main())


@app.command()
def scan(config: ConfigOpt = None, seconds: float = 10.0) -> None:
    """List nearby health devices with the profile they were recognised as."""
    from bleak.exc import BleakError  # noqa: PLC0415

    from gateway.ble import discover, scanner_backend  # noqa: PLC0415
    from gateway.service import build_registry  # noqa: PLC0415

    s = _settings(config)
    try:
        found = asyncio.run(discover(build_registry(s), scanner_backend(s.ble_scanner_backend), seconds))
    except (GatewayError, BleakError, OSError) as err:
        raise _no_bluetooth(err) from err
    if not found:
        console.print("No health devices found. Wake the device (take a measurement) and try again.")
        return
    table = Table("name", "profile", "kind", "rssi")
    table.columns.insert(0, _address_column())
    for dev, adv, profile in sorted(found, key=lambda t: t[0].address):
        table.add_row(dev.address, adv.local_name or dev.name or "", profile.id, profile.kind.value, str(adv.rssi))
    console.print(table)


def _address_column() -> Column:
    # Never shortened: `unpair` needs the whole address (other columns wrap instead).
    return Column("address", no_wrap=True, min_width=17)


@app.command()
def pair(
    address: str,
    config: ConfigOpt = None,
    seconds: float = 15.0,
    user: Annotated[
        int | None,
        typer.Option(
            min=0, max=254, help="the patient's user number on a shared cuff or scale (default: the gateway setting, 1)"
        ),
    ] = None,
) -> None:
    """Pair (bond) with a device and remember it as the patient's."""
    from bleak import BleakClient  # noqa: PLC0415
    from bleak.exc import BleakError  # noqa: PLC0415

    from gateway.ble import client_backend, discover, scanner_backend  # noqa: PLC0415
    from gateway.outbox import Outbox  # noqa: PLC0415
    from gateway.service import build_registry  # noqa: PLC0415

    s = _settings(config)
    try:
        found = asyncio.run(discover(build_registry(s), scanner_backend(s.ble_scanner_backend), seconds))
    except (GatewayError, BleakError, OSError) as err:
        raise _no_bluetooth(err) from err
    match = next(((d, p) for d, _a, p in found if d.address.upper() == address.upper()), None)
    if match is None:
        console.print(f"[red]{address} not seen.[/red] Wake the device (take a measurement) and try again.")
        raise typer.Exit(1)
    device, profile = match

    async def bond() -> None:
        async with BleakClient(device, backend=client_backend(s.ble_client_backend)) as client:
            if profile.needs_bonding:
                await client.pair()

    try:
        asyncio.run(bond())
    except (BleakError, TimeoutError, OSError) as err:
        console.print(f"[red]Could not pair {device.address}:[/red] {err}", highlight=False)
        raise typer.Exit(1) from err
    outbox = Outbox(s.db_path, capacity=s.outbox_capacity)
    outbox.set_paired(device.address, profile.id, True)
    if user is not None:
        outbox.set_user_index(device.address, user)
    outbox.close()
    as_user = f" (the patient is user {user})" if user is not None else ""
    console.print(f"Paired [bold]{device.address}[/bold] as {profile.display_name}{as_user}.", highlight=False)


@app.command()
def unpair(address: str, config: ConfigOpt = None) -> None:
    """Forget a device (it will no longer be read unless the platform's config allows it)."""
    from gateway.outbox import Outbox  # noqa: PLC0415

    s = _settings(config)
    outbox = Outbox(s.db_path, capacity=s.outbox_capacity)
    outbox.set_paired(address, None, False)
    outbox.close()
    console.print(f"Unpaired {address}.")


@app.command()
def devices(config: ConfigOpt = None) -> None:
    """Devices this gateway knows: paired, last seen, battery, last record number."""
    from gateway.outbox import Outbox  # noqa: PLC0415

    s = _settings(config)
    outbox = Outbox(s.db_path, capacity=s.outbox_capacity)
    rows = outbox.devices()
    outbox.close()
    if not rows:
        console.print("No devices yet. Pair one with `egenmon-gateway pair ADDRESS`.")
        return
    table = Table("profile", "paired", "last seen (UTC)", "battery %", "last record", "user")
    table.columns.insert(0, _address_column())
    for d in rows:
        table.add_row(
            d.address,
            d.profile_id or "",
            "yes" if d.paired else "no",
            d.last_seen_at.strftime("%Y-%m-%d %H:%M") if d.last_seen_at else "never",
            "" if d.battery_pct is None else str(d.battery_pct),
            "" if d.last_sequence is None else str(d.last_sequence),
            str(d.user_index if d.user_index is not None else s.patient_user_index),
        )
    console.print(table)


@app.command()
def status(config: ConfigOpt = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The gateway's last status (written by `run`) and its outbox depth."""
    from gateway.outbox import Outbox  # noqa: PLC0415

    s = _settings(config)
    path = s.state_dir / "status.json"
    outbox = Outbox(s.db_path, capacity=s.outbox_capacity)
    depth, rejected = outbox.depth, outbox.rejected_count()
    outbox.close()
    doc = json.loads(path.read_text()) if path.exists() else {}
    if as_json:
        console.print_json(json.dumps({**doc, "outbox_depth": depth, "rejected_values": rejected}))
        return
    console.print(f"Gateway: [bold]{s.gateway_id or 'not enrolled'}[/bold]")
    console.print(f"Readings waiting to be sent: {depth} (capacity {s.outbox_capacity})")
    console.print(f"Undecodable values kept: {rejected}")
    if doc:
        synced = {True: "synchronised", False: "NOT synchronised", None: "unknown"}[doc.get("clock_synchronised")]
        offset = doc.get("clock_offset_s")
        console.print(
            f"Clock: {synced}"
            + (f", offset {offset:+.3f} s" if offset is not None else "")
            + (f", max error {doc['clock_max_error_s']:.3f} s" if doc.get("clock_max_error_s") is not None else "")
        )
        if doc.get("overdue_kinds"):
            console.print(f"Overdue measurements: {', '.join(doc['overdue_kinds'])}")
    for d in doc.get("devices", []):
        clock = "unset" if d.get("clock_unset") else d.get("clock_offset_s")
        console.print(
            f"  {d['address']}  {d.get('kind') or ''}  last seen {d.get('last_seen_at') or 'never'}"
            f"  battery {d.get('battery_pct')}  decode errors {d.get('decode_errors', 0)}"
            + (f"  clock {clock if isinstance(clock, str) else f'{clock:+.0f} s'}" if clock is not None else "")
        )


@app.command()
def enroll(
    code: str,
    config: ConfigOpt = None,
    clinic_url: Annotated[str | None, typer.Option(help="clinic API base URL")] = None,
    serial: Annotated[
        str | None,
        typer.Option(help="this gateway's hardware serial number, sent to the clinic to record which box it is"),
    ] = None,
) -> None:
    """Exchange a one-time enrollment code for this gateway's identity and credentials."""
    from gateway.enroll import request_enrollment, store_identity  # noqa: PLC0415

    s = _settings(config)
    url = clinic_url or s.clinic_url
    if not url:
        console.print("[red]No clinic URL:[/red] pass --clinic-url or set EGENMON_GATEWAY_CLINIC_URL.")
        raise typer.Exit(2)
    try:
        resp = request_enrollment(url, code, serial=serial, ca_file=s.clinic_ca_file)
    except GatewayError as err:
        console.print(f"[red]Enrollment failed:[/red] {err}")
        raise typer.Exit(1) from err
    path = store_identity(s.state_dir, resp)
    console.print(f"Enrolled as [bold]{resp.gateway_id}[/bold]; identity written to {path}.")
