"""Deployment files: the compose file parses and references what exists; env.md is complete."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from simulators.settings import SimulatorSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
# Paths maintained by another area (the gateway engineer's broker configuration).
OTHER_AREAS = ("mosquitto",)


def _compose() -> dict[str, Any]:
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


def test_compose_has_the_platform_with_health_checks() -> None:
    services = _compose()["services"]
    assert set(services) >= {"timescaledb", "mosquitto", "migrate", "ingest", "alerting", "clinic_api"}
    # Pinned to an exact release (tests/test_deploy_files.py checks every image).
    assert re.fullmatch(r"timescale/timescaledb:\d+\.\d+\.\d+-pg16", services["timescaledb"]["image"])
    ingest_env = services["ingest"]["environment"]
    # Stable session names: workers of one container, not replicas named after containers.
    assert "deploy" not in services["ingest"]
    assert ingest_env["EGENMON_INGEST_PROCESSES"].endswith("2}")
    assert "EGENMON_INGEST_CLIENT_ID" in ingest_env
    for name, svc in services.items():
        if name != "migrate":
            assert "healthcheck" in svc, name
            assert svc["restart"] == "unless-stopped", name
    for name in ("ingest", "alerting", "clinic_api"):
        cmd = services[name]["command"]
        assert cmd[:3] == ["python", "-m", name]
        assert (ROOT / name / "__init__.py").exists()
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_compose_volumes_and_build_reference_existing_files() -> None:
    doc = _compose()
    named = set(doc["volumes"])
    for name, svc in doc["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("$"):
                continue  # the operator's directory (documented in env.md, checked below)
            if source.startswith((".", "/")):
                path = (DEPLOY / source).resolve()
                if path.relative_to(DEPLOY).parts[0] not in OTHER_AREAS:
                    assert path.exists(), (name, source)
            else:
                assert source in named, (name, source)
        build = svc.get("build")
        if build:
            context = (DEPLOY / build["context"]).resolve()
            assert context == ROOT
            dockerfile = (context / build["dockerfile"]).read_text()
            for src in re.findall(r"^COPY (?!--from)(\S+)", dockerfile, flags=re.MULTILINE):
                assert (context / src).exists(), src


def test_every_compose_variable_is_documented_in_env_md() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    env_md = (DEPLOY / "env.md").read_text()
    variables = set(re.findall(r"\$\{([A-Z_]+)", text))
    for doc in _compose()["services"].values():
        if "build" not in doc:
            continue  # third-party images document their own variables
        env = doc.get("environment", {})
        variables |= {k for k in env if k.isupper()}
    assert variables
    missing = sorted(v for v in variables if f"`{v}`" not in env_md)
    assert missing == []


def test_env_md_is_one_table_and_covers_the_simulators_settings() -> None:
    env_md = (DEPLOY / "env.md").read_text()
    rows = [line for line in env_md.splitlines() if line.startswith("| `")]
    assert len(rows) > 20
    for field in SimulatorSettings.model_fields:
        if field not in {"database_url", "mqtt_url"}:
            assert f"`EGENMON_SIM_{field.upper()}`" in env_md


def test_operations_guide_covers_the_required_topics() -> None:
    text = (DEPLOY / "OPERATIONS.md").read_text()
    for topic in (
        "## Install",
        "## Upgrade",
        "pg_dump",
        "pg_restore",
        "## Rotating gateway credentials",
        "## Scaling ingest",
    ):
        assert topic in text
    for unit in (
        "egenmon-ingest.service",
        "egenmon-alerting.service",
        "egenmon-clinic.service",
        "egenmon-gateway.service",
    ):
        assert unit in text
