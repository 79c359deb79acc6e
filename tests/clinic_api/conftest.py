"""Clinic API fixtures: a seeded database, the app on it, tokens from the dev issuer."""

from __future__ import annotations

import datetime as dt
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from clinic_api import demo_seed
from clinic_api.app import create_app
from clinic_api.settings import Settings

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


@pytest.fixture
def seed(database_url: str) -> Seed:
    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(database_url) as conn:
        units = demo_seed.seed_staff(conn)
        ids = demo_seed.seed_patients(conn, units, days=7, now=now, cgm_every_min=30)
        rows = conn.execute("SELECT pseudonym, id FROM patient WHERE id = ANY(%s)", (ids,)).fetchall()
    return Seed(database_url, units, {r[0]: r[1] for r in rows}, now)


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


@pytest.fixture
def client(seed: Seed) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(seed.url))) as c:
        yield c


@pytest.fixture
def auth(client: TestClient) -> Callable[[str], dict[str, str]]:
    cache: dict[str, dict[str, str]] = {}

    def headers(subject: str) -> dict[str, str]:
        if subject not in cache:
            r = client.post("/dev-issuer/token", json={"subject": subject})
            assert r.status_code == 200, r.text
            cache[subject] = {"Authorization": f"Bearer {r.json()['access_token']}"}
        return cache[subject]

    return headers
