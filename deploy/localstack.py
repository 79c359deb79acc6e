"""The throwaway local stack: a PostgreSQL cluster and a Mosquitto broker on free ports.

Used by the README's demo and by the test harness, so both run the same way on every
machine. PostgreSQL refuses to run as root: when started as root, initdb and pg_ctl run
as the ``postgres`` system user on a data directory that user owns. Mosquitto is told to
stay the user it was started as, so its persistence and log paths stay writable.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from device_profiles.wire import MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)


class StackError(RuntimeError):
    """A local service could not be started or stopped."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_range(n: int) -> int:
    """The first of ``n`` consecutive free ports (for ingest's per-process metrics ports)."""
    for _ in range(100):
        first = free_port()
        with contextlib.ExitStack() as stack:
            try:
                for port in range(first + 1, first + n):
                    sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return first
    raise StackError(f"no {n} consecutive free ports")


def wait_for_port(port: int, timeout_s: float = 20.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise StackError(f"nothing listens on {host}:{port} after {timeout_s:.0f} s")


def postgres_bindir() -> Path:
    """The newest PostgreSQL server binaries on this machine."""
    with contextlib.suppress(FileNotFoundError, subprocess.CalledProcessError):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
        candidate = Path(out.stdout.strip())
        if (candidate / "initdb").exists() and (candidate / "postgres").exists():
            return candidate
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if not versions:
        raise StackError("no PostgreSQL server binaries found (install postgresql)")
    return versions[-1].parent


def timescaledb_installed() -> bool:
    """Whether the TimescaleDB extension is installed for the server binaries we use."""
    try:
        out = subprocess.run(
            [str(postgres_bindir() / "pg_config"), "--pkglibdir"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (FileNotFoundError, subprocess.CalledProcessError, StackError):
        return False
    return any(Path(out.stdout.strip()).glob("timescaledb*.so"))


# TimescaleDB runs one scheduler per database plus a worker per running job, all taken from
# max_worker_processes (PostgreSQL's default of 8 is shared with parallel query). The test
# suite has a database per test alive at a time, each with its own scheduler; with the
# defaults the schedulers and jobs starve ("out of background workers").
TIMESCALEDB_BACKGROUND_WORKERS = 32
PARALLEL_WORKERS = 4


def timescaledb_settings(background_workers: int = TIMESCALEDB_BACKGROUND_WORKERS) -> list[str]:
    """postgresql.conf lines for preloading TimescaleDB with room for its workers."""
    return [
        "shared_preload_libraries = 'timescaledb'",
        "timescaledb.telemetry_level = off",
        f"timescaledb.max_background_workers = {background_workers}",
        f"max_parallel_workers = {PARALLEL_WORKERS}",
        # The background workers, the parallel workers, the launcher and a spare.
        f"max_worker_processes = {background_workers + PARALLEL_WORKERS + 2}",
    ]


def _as_postgres_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


@dataclass
class LocalPostgres:
    """A PostgreSQL cluster of its own: initdb into ``base_dir``, start, stop, restart."""

    base_dir: Path
    port: int = field(default_factory=free_port)
    user: str = "egenmon"
    database: str = "egenmon"
    # Tests trade durability of the throwaway cluster for speed; the demo keeps fsync on.
    durable: bool = True
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "pgdata"

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str) -> None:
        result = subprocess.run([*_as_postgres_user(), *args], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise StackError(f"{Path(args[0]).name} failed: {result.stderr.strip() or result.stdout.strip()}")

    def _chown_to_postgres(self, path: Path) -> None:
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def init(self) -> None:
        bindir = postgres_bindir()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        # The postgres user must be able to reach its data directory.
        self.base_dir.chmod(0o755)
        pwfile = self.base_dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        self._chown_to_postgres(pwfile)
        pwfile.chmod(0o600)
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        self._chown_to_postgres(self.data_dir)
        self._run(
            str(bindir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            self.user,
            "--pwfile",
            str(pwfile),
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        )
        pwfile.unlink()
        conf = [
            f"port = {self.port}",
            "listen_addresses = '127.0.0.1'",
            "unix_socket_directories = ''",
            "max_connections = 200",
            "shared_buffers = 128MB",
            "timezone = 'UTC'",
            "log_min_messages = warning",
        ]
        if not self.durable:
            conf += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        if timescaledb_installed():
            conf += timescaledb_settings()
        with (self.data_dir / "postgresql.conf").open("a") as f:
            f.write("\n# egenmon local stack\n" + "\n".join(conf) + "\n")

    def start(self) -> None:
        if not (self.data_dir / "PG_VERSION").exists():
            self.init()
        self._run(
            str(postgres_bindir() / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.data_dir / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        self._ensure_database()

    def _ensure_database(self) -> None:
        admin = self.url.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.database}"')

    def stop(self, mode: str = "fast") -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._run(str(postgres_bindir() / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()


def terminate(proc: subprocess.Popen[bytes] | None, timeout_s: float = 10.0) -> None:
    """SIGTERM a child we started and wait for it; SIGKILL if it has not gone within the timeout."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class LocalMosquitto:
    """A Mosquitto broker with a generated config on a free port."""

    base_dir: Path
    port: int = field(default_factory=free_port)
    # Extra config lines (listeners with TLS, ACLs) for tests of the production setup.
    extra_config: list[str] = field(default_factory=list)
    anonymous: bool = True
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.base_dir / "mosquitto.conf"

    def write_config(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        (self.base_dir / "data").mkdir(exist_ok=True)
        lines = [
            # Stay the user we were started as, so data and log paths remain writable.
            f"user {getpass.getuser()}",
            "per_listener_settings false",
            f"allow_anonymous {'true' if self.anonymous else 'false'}",
            "persistence true",
            f"persistence_location {self.base_dir / 'data'}/",
            # As deploy/mosquitto/mosquitto.conf: a crash loses at most ~2 s of acknowledged messages.
            "autosave_interval 1",
            f"log_dest file {self.base_dir / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            # A persistent ingest session must be able to hold a long outage's readings.
            "max_queued_messages 0",
            "max_queued_bytes 0",
            "max_inflight_messages 0",
            # As deploy/mosquitto/mosquitto.conf: publishes above the wire limit are refused.
            f"message_size_limit {MAX_MESSAGE_BYTES}",
            f"listener {self.port} 127.0.0.1",
            *self.extra_config,
        ]
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise StackError("mosquitto is not installed (apt-get install mosquitto)")
        self.write_config()
        self.process = subprocess.Popen(
            [exe, "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for_port(self.port)
        except StackError:
            self.stop()
            raise

    def stop(self) -> None:
        proc, self.process = self.process, None
        terminate(proc)

    def restart(self) -> None:
        self.stop()
        self.start()
