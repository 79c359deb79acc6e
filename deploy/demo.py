"""The README's run command: the whole platform on one machine.

Starts the local stack (a throwaway PostgreSQL cluster and Mosquitto under ``.state/``)
unless DATABASE_URL / MQTT_URL point at external services, applies the migrations, and
runs the platform's services until Ctrl-C, then stops everything it started.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from deploy.localstack import LocalMosquitto, LocalPostgres
from ingest.schema import migrate

log = logging.getLogger("egenmon.demo")
app = typer.Typer(add_completion=False, help=__doc__)

STATE_DIR = Path(__file__).resolve().parent.parent / ".state"


@app.command()
def main(
    state_dir: Annotated[Path, typer.Option(help="Where the throwaway services keep their data")] = STATE_DIR,
    fresh: Annotated[bool, typer.Option(help="Delete the previous demo's data first")] = True,
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    started: list[LocalPostgres | LocalMosquitto] = []
    procs: list[subprocess.Popen[bytes]] = []
    if fresh and state_dir.exists():
        shutil.rmtree(state_dir)
    try:
        database_url = os.environ.get("DATABASE_URL")
        if not database_url:
            pg = LocalPostgres(state_dir / "postgres")
            typer.echo("Starting a throwaway PostgreSQL ...")
            pg.start()
            started.append(pg)
            database_url = pg.url
        mqtt_url = os.environ.get("MQTT_URL")
        if not mqtt_url:
            broker = LocalMosquitto(state_dir / "mosquitto")
            typer.echo("Starting a throwaway Mosquitto ...")
            broker.start()
            started.append(broker)
            mqtt_url = broker.url
        typer.echo("Applying migrations ...")
        mode = migrate(database_url)
        env = {**os.environ, "DATABASE_URL": database_url, "MQTT_URL": mqtt_url}
        if _module_exists("ingest.cli"):
            procs.append(subprocess.Popen([sys.executable, "-m", "ingest", "run"], env=env))
        typer.echo(
            f"\negenmon is running (storage: {mode}).\n"
            f"  database: {database_url}\n  broker:   {mqtt_url}\nPress Ctrl-C to stop."
        )
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        raise typer.Exit(1)
    except KeyboardInterrupt:
        typer.echo("\nStopping ...")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        for service in reversed(started):
            service.stop()


def _module_exists(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


if __name__ == "__main__":
    app()
