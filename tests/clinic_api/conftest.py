"""Clinic API fixtures: a seeded database, the app on it, tokens from the dev issuer."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from clinic_api import demo_seed
from clinic_api.app import create_app
from clinic_api.auth import DevIssuerKeys
from clinic_api.settings import Settings
from deploy.localstack import free_port
from tests.fixtures.db import create_test_database, drop_test_database

# Starlette 1.x warns once, at import, that it prefers the httpx2 package over httpx; the
# installed httpx works, and warnings are errors in this suite.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

NURSE = "demo-nurse-anna"  # MON-NORD
PHYSICIAN = "demo-physician-erik"  # MON-NORD + MON-SYD
NURSE_SYD = "demo-nurse-sara"  # MON-SYD
ADMIN = "demo-admin-maria"
AUDITOR = "demo-auditor-olle"


@dataclass
class Seed:
    url: str
    units: dict[str, uuid.UUID]
    patients: dict[str, uuid.UUID]  # by pseudonym
    now: dt.datetime

    def alert_id(self, pseudonym: str) -> int:
        with psycopg.connect(self.url) as conn:
            row = conn.execute(
                "SELECT id FROM alert WHERE patient_id = %s ORDER BY id LIMIT 1", (self.patients[pseudonym],)
            ).fetchone()
        assert row is not None
        return int(row[0])


def seed_database(database_url: str) -> Seed:
    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(database_url) as conn:
        units = demo_seed.seed_staff(conn)
        ids = demo_seed.seed_patients(conn, units, days=7, now=now, cgm_every_min=30)
        rows = conn.execute("SELECT pseudonym, id FROM patient WHERE id = ANY(%s)", (ids,)).fetchall()
    return Seed(database_url, units, {r[0]: r[1] for r in rows}, now)


@pytest.fixture
def seed(database_url: str) -> Seed:
    """A fresh database of the test's own with the demo units, staff, patients and alerts."""
    return seed_database(database_url)


@pytest.fixture(scope="module")
def shared_seed(pg_admin_url: str, template_database: str) -> Iterator[Seed]:
    """One seeded database for a module of tests that only read (or tolerate each other)."""
    url = create_test_database(pg_admin_url, template_database)
    try:
        yield seed_database(url)
    finally:
        drop_test_database(pg_admin_url, url)


@pytest.fixture(scope="session")
def dev_keys() -> DevIssuerKeys:
    # RSA key generation costs ~0.1-0.5 s; one key for the whole session.
    return DevIssuerKeys()


def make_settings(database_url: str, **kw: Any) -> Settings:
    base: dict[str, Any] = {
        "database_url": database_url,
        "demo": True,
        "public_base_url": "http://testserver",
        "pool_min_size": 1,
        "pool_max_size": 4,
        "mqtt_public_url": "mqtt://127.0.0.1:1883",
    }
    base.update(kw)
    return Settings(**base)


@contextlib.contextmanager
def app_client(settings: Settings, dev_keys: DevIssuerKeys) -> Iterator[TestClient]:
    """A test client whose app reaches the dev issuer through the client itself, so the
    pages' sign-in (authorization code + PKCE) runs in-process."""
    with TestClient(create_app(settings, dev_keys=dev_keys)) as c:
        c.app.state.oidc.http = c  # type: ignore[attr-defined]
        yield c


@pytest.fixture
def client(seed: Seed, dev_keys: DevIssuerKeys) -> Iterator[TestClient]:
    with app_client(make_settings(seed.url), dev_keys) as c:
        yield c


@pytest.fixture
def fresh_seed(database_url: str) -> Seed:
    return seed_database(database_url)


@pytest.fixture
def fresh_client(fresh_seed: Seed, dev_keys: DevIssuerKeys) -> Iterator[TestClient]:
    """A client on a database of the test's own, also in modules that override ``client``."""
    with app_client(make_settings(fresh_seed.url), dev_keys) as c:
        yield c


@pytest.fixture(scope="module")
def shared_client(shared_seed: Seed, dev_keys: DevIssuerKeys) -> Iterator[TestClient]:
    with app_client(make_settings(shared_seed.url), dev_keys) as c:
        yield c


def token_headers(client: TestClient, subject: str) -> dict[str, str]:
    r = client.post("/dev-issuer/token", json={"subject": subject})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture(scope="module")
def shared_auth(shared_client: TestClient) -> Callable[[str], dict[str, str]]:
    cache: dict[str, dict[str, str]] = {}

    def headers(subject: str) -> dict[str, str]:
        if subject not in cache:
            cache[subject] = token_headers(shared_client, subject)
        return cache[subject]

    return headers


@pytest.fixture
def auth(client: TestClient) -> Callable[[str], dict[str, str]]:
    cache: dict[str, dict[str, str]] = {}

    def headers(subject: str) -> dict[str, str]:
        if subject not in cache:
            cache[subject] = token_headers(client, subject)
        return cache[subject]

    return headers


ROOT = Path(__file__).resolve().parents[2]
HEALTHY_WITHIN_S = 120


@contextlib.contextmanager
def live_server(database_url: str, **extra_env: str) -> Iterator[str]:
    """``python -m clinic_api run`` as a subprocess on a free loopback port; yields its base URL.

    It verifies tokens through its own published JWKS over HTTP (PyJWKClient), as it would
    against a region's identity provider.
    """
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url,
        "EGENMON_CLINIC_DEMO": "1",
        "EGENMON_CLINIC_HOST": "127.0.0.1",
        "EGENMON_CLINIC_PORT": str(port),
        "EGENMON_CLINIC_PUBLIC_BASE_URL": base,
        "EGENMON_CLINIC_OIDC_JWKS_URL": f"{base}/dev-issuer/jwks",
        "EGENMON_CLINIC_POOL_MAX_SIZE": "8",
        **extra_env,
    }
    # Output to a file, never an unread pipe: a full pipe would stall the server.
    artifacts = ROOT / "test-artifacts" / "clinic_api"
    artifacts.mkdir(parents=True, exist_ok=True)
    log_path = artifacts / f"clinic-server-{port}.log"
    log_file = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "clinic_api", "run"], cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT
    )
    try:
        # Startup, not speed: on a loaded machine importing the app alone took 26 s.
        deadline = time.monotonic() + HEALTHY_WITHIN_S
        while True:
            if proc.poll() is not None:
                out = log_path.read_text(errors="replace")
                raise RuntimeError(f"clinic_api exited with {proc.returncode}: {out[-2000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"clinic_api did not become healthy in {HEALTHY_WITHIN_S} s")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_file.close()


def live_token(base: str, subject: str) -> str:
    r = httpx.post(f"{base}/dev-issuer/token", json={"subject": subject}, timeout=10)
    r.raise_for_status()
    token: str = r.json()["access_token"]
    return token


@pytest.fixture
def server(fresh_seed: Seed) -> Iterator[str]:
    """The app as a real server on its own seeded database (the browser tests' target)."""
    with live_server(fresh_seed.url) as base:
        yield base
