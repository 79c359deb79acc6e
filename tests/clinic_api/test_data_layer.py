"""SQL lives in clinic_api/queries only, and every missing row answers the one NotFound 404."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from clinic_api.errors import NotFound
from tests.clinic_api.conftest import NURSE, ROOT, TestClient

Auth = Callable[[str], dict[str, str]]

# The demo seed writes fixtures (units, staff, patients, readings) and is no data layer.
OUTSIDE_QUERIES_ALLOWED = {"demo_seed.py"}
DB_CALL = re.compile(r"\.(execute|executemany|cursor|copy)\(")


@pytest.fixture
def client(shared_client: TestClient) -> TestClient:
    return shared_client


def test_no_sql_outside_the_queries_package() -> None:
    package = ROOT / "clinic_api"
    offenders = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in sorted(package.rglob("*.py"))
        if "queries" not in path.relative_to(package).parts and path.name not in OUTSIDE_QUERIES_ALLOWED
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if DB_CALL.search(line)
    ]
    assert not offenders, "\n".join(offenders)
    # The check sees a call where there is one.
    assert DB_CALL.search('conn.execute("SELECT 1")')


def test_not_found_keeps_the_sentence_clients_read() -> None:
    assert NotFound("patient").detail == "patient not found"
    assert NotFound("enrollment code", detail="unknown enrollment code").detail == "unknown enrollment code"


def test_former_404_exceptions_answer_as_before(client: TestClient, shared_auth: Auth) -> None:
    r = client.post("/api/v1/gateway-enrollment", json={"code": "ABCD-EFGH-JKLM", "serial": "SN-NONE"})
    assert (r.status_code, r.json()) == (404, {"detail": "unknown enrollment code"})
    r = client.post("/dev-issuer/token", json={"subject": "nobody-at-all"})
    assert (r.status_code, r.json()) == (404, {"detail": "no demo staff with this subject"})
    # An unknown page action: the Swedish 404 page, not JSON.
    alerts = client.get("/api/v1/alerts", headers=shared_auth(NURSE)).json()
    r = client.post(f"/ui/alerts/{alerts[0]['id']}/no-such-action", headers=shared_auth(NURSE), follow_redirects=False)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/html")
