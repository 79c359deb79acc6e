"""deploy/ agrees with itself: systemd units, compose file, Dockerfile and the guides.

Region IT copies these files as they are, so the checks read them as systemd and Docker
would: one virtual environment path everywhere, commands that exist, environment files the
guides tell you to write, images pinned, a health check on every long-running service.
`systemd-analyze verify` and `docker compose config` run as well where the machine has
them (no Docker daemon is needed for either).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
VENV = "/opt/egenmon/venv"
SERVER_UNITS = {"egenmon-ingest.service", "egenmon-alerting.service", "egenmon-clinic.service"}
GUIDES = [DEPLOY / "OPERATIONS.md", DEPLOY / "gateway-install.md", DEPLOY / "mosquitto" / "README.md"]


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Sections -> (key, value) in order; keys may repeat (Environment=), as systemd allows."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"{path.name}: {line!r} before any section"
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not a key=value line: {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


def one(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> str:
    values = [v for k, v in unit.get(section, []) if k == key]
    assert len(values) == 1, f"[{section}] {key}= appears {len(values)} times"
    return values[0]


def test_every_unit_is_complete_and_runs_from_the_one_venv() -> None:
    assert {u.name for u in UNITS} == {*SERVER_UNITS, "egenmon-gateway.service"}
    for path in UNITS:
        unit = parse_unit(path)
        assert one(unit, "Unit", "Description")
        assert one(unit, "Install", "WantedBy") == "multi-user.target"
        exec_start = shlex.split(one(unit, "Service", "ExecStart"))
        assert exec_start[0].startswith(f"{VENV}/bin/"), (path.name, exec_start[0])
        assert one(unit, "Service", "WorkingDirectory") == "/opt/egenmon"
        user, group = one(unit, "Service", "User"), one(unit, "Service", "Group")
        env_file = one(unit, "Service", "EnvironmentFile")
        if path.name in SERVER_UNITS:
            assert (user, group) == ("egenmon", "egenmon")
            name = path.stem.removeprefix("egenmon-")
            assert env_file == f"/etc/egenmon/{name}.env"
            assert env_file in (DEPLOY / "OPERATIONS.md").read_text(), f"OPERATIONS.md never says to write {env_file}"
        else:
            assert (user, group) == ("egenmon-gw", "egenmon-gw")
            assert env_file == "-/etc/egenmon/gateway.env"  # optional: enrollment writes the rest
            assert "--config /etc/egenmon/gateway.toml" in one(unit, "Service", "ExecStart")
            assert "/etc/egenmon/gateway.toml" in (DEPLOY / "gateway-install.md").read_text()


def _help_of(exec_start: list[str]) -> str:
    """--help of the command the unit starts, run with this interpreter from this tree."""
    exe = Path(exec_start[0]).name
    if exe == "python":
        assert exec_start[1] == "-m"
        module, command = exec_start[2], exec_start[3]
        assert (ROOT / module / "__main__.py").exists(), f"python -m {module} has no __main__"
        argv = [sys.executable, "-m", module, command, "--help"]
    else:
        with (ROOT / "pyproject.toml").open("rb") as f:
            scripts = tomllib.load(f)["project"]["scripts"]
        assert exe in scripts, f"{exe} is not a [project.scripts] entry point"
        mod, attr = scripts[exe].split(":")
        command = exec_start[1]
        argv = [sys.executable, "-c", f"import sys; from {mod} import {attr} as a; sys.argv[0] = {exe!r}; a()"]
        argv += [command, "--help"]
    out = subprocess.run(argv, check=False, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, (exec_start, out.stderr)
    return out.stdout


@pytest.mark.parametrize("unit_path", UNITS, ids=lambda p: p.name)
def test_unit_command_and_its_options_exist(unit_path: Path) -> None:
    exec_start = shlex.split(one(parse_unit(unit_path), "Service", "ExecStart"))
    helped = _help_of(exec_start)
    for option in (a for a in exec_start if a.startswith("--")):
        assert option in helped, f"{unit_path.name}: {option} is not an option of {exec_start[:4]}"


def test_one_venv_path_in_units_and_guides() -> None:
    texts = {p: p.read_text() for p in [*UNITS, *GUIDES, DEPLOY / "env.md", ROOT / "README.md"]}
    for path, text in texts.items():
        assert "/opt/egenmon/.venv" not in text, path
        for found in re.findall(r"/opt/egenmon/[\w.-]*venv", text):
            assert found == VENV, (path, found)
    ops = texts[DEPLOY / "OPERATIONS.md"]
    assert f"python3 -m venv {VENV}" in ops
    assert f"python3 -m venv {VENV}" in texts[DEPLOY / "gateway-install.md"]


def test_guides_install_the_release_artefacts_and_create_the_service_users() -> None:
    ops = (DEPLOY / "OPERATIONS.md").read_text()
    gw = (DEPLOY / "gateway-install.md").read_text()
    assert "<the egenmon release>" not in ops
    assert "./dev release" in ops
    assert "./dev release" in gw
    assert re.search(r"pip install \S*egenmon-\S+\.whl\[server\]", ops)
    assert re.search(r"pip install \S*egenmon-\S+\.whl\[gateway\]", gw)
    assert re.search(r"useradd --system .*\begenmon\b", ops)
    assert re.search(r"useradd --system (.|\n)*egenmon-gw", gw)


def test_gateway_guide_copies_the_unit_before_anything_starts_it() -> None:
    lines = (DEPLOY / "gateway-install.md").read_text().splitlines()
    copy = next(i for i, ln in enumerate(lines) if re.search(r"cp \S*egenmon-gateway\.service /etc/systemd/system", ln))
    reload_ = next(i for i, ln in enumerate(lines) if "systemctl daemon-reload" in ln)
    enroll = next(i for i, ln in enumerate(lines) if "egenmon-gateway enroll" in ln)
    state_dir = next(i for i, ln in enumerate(lines) if re.search(r"install -d .*/var/lib/egenmon-gateway", ln))
    starts = [i for i, ln in enumerate(lines) if re.search(r"systemctl (start|enable|restart).*egenmon-gateway", ln)]
    assert starts
    assert copy < reload_ < min(starts)
    assert state_dir < enroll  # enroll writes there before the unit ever ran
    assert not any("|| true" in ln for ln in lines)


def test_systemd_analyze_verify_finds_nothing(tmp_path: Path) -> None:
    """Every unit through systemd's own checker, with the venv path pointed at a real one.

    Only /opt/egenmon/venv is rewritten (verify insists the ExecStart binary exists);
    everything else is the file as shipped.
    """
    analyze = shutil.which("systemd-analyze")
    checked = []
    if analyze is None:
        # A machine without systemd: the lint tests above are the check; still, every unit
        # must at least parse and start something from the venv.
        for path in UNITS:
            assert one(parse_unit(path), "Service", "ExecStart").startswith(f"{VENV}/bin/")
        return
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").symlink_to(sys.executable)
    (venv_bin / "egenmon-ingest").symlink_to(sys.executable)
    for path in UNITS:
        copy = tmp_path / path.name
        copy.write_text(path.read_text().replace(VENV, str(tmp_path / "venv")))
        out = subprocess.run(
            [analyze, "verify", "--man=no", str(copy)], check=False, capture_output=True, text=True, timeout=60
        )
        # Units it refers to that this machine lacks (bluetooth.target off a Pi) are not our errors.
        problems = [
            ln
            for ln in (out.stdout + out.stderr).splitlines()
            if ln.strip() and path.name in ln and "not found" not in ln.lower()
        ]
        assert not problems, problems
        assert out.returncode == 0 or all("not found" in ln.lower() for ln in out.stderr.splitlines() if ln.strip())
        checked.append(path.name)
    assert len(checked) == len(UNITS)


# -- compose ---------------------------------------------------------------------------


def compose() -> dict[str, object]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, object]]:
    svc = compose()["services"]
    assert isinstance(svc, dict)
    return svc


PINNED_TAG = re.compile(r"^[\w./-]+:(\d+\.\d+\.\d+)[\w.-]*$")


def test_compose_pulls_only_pinned_images_and_builds_one_from_the_repo() -> None:
    pulled = {name: s["image"] for name, s in services().items() if "build" not in s}
    assert set(pulled) == {"timescaledb", "mosquitto"}
    for name, image in pulled.items():
        assert isinstance(image, str)
        assert "latest" not in image, (name, image)
        assert PINNED_TAG.match(image), f"{name}: {image} is not pinned to an exact x.y.z version"
    built = {name: s for name, s in services().items() if "build" in s}
    assert set(built) == {"migrate", "ingest", "alerting", "clinic_api"}
    builds = {yaml.safe_dump(s["build"]) for s in built.values()}
    assert len(builds) == 1, "one image for every service"
    assert len({s["image"] for s in built.values()}) == 1
    build = next(iter(built.values()))["build"]
    assert isinstance(build, dict)
    assert "dockerfile_inline" not in build
    context = (DEPLOY / str(build["context"])).resolve()
    assert context == ROOT
    dockerfile = context / str(build["dockerfile"])
    assert dockerfile.is_file()
    commands = {name: s["command"] for name, s in built.items()}
    assert len({str(c) for c in commands.values()}) == len(commands), "each service its own command"


def test_dockerfile_is_pinned_and_copies_what_exists() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    froms = re.findall(r"^FROM (\S+)", text, flags=re.M)
    assert froms
    for image in froms:
        assert PINNED_TAG.match(image), image
    for line in re.findall(r"^COPY (?!--from)(.+)$", text, flags=re.M):
        *sources, _dest = line.split()
        for src in sources:
            assert (ROOT / src).exists(), f"Dockerfile copies {src}, which is not in the repository"
    # The server extra, never the dev one, and not as root.
    assert "[server]" in text
    assert "[dev]" not in text
    assert re.search(r"^USER egenmon$", text, flags=re.M)


def test_every_long_running_service_has_a_health_check_and_dependents_wait_for_it() -> None:
    svcs = services()
    for name, s in svcs.items():
        if s.get("restart") == "no":
            # One-shot (migrate): the others wait for it to complete, not to be healthy.
            continue
        hc = s.get("healthcheck")
        assert isinstance(hc, dict), f"{name} has no healthcheck"
        assert hc["test"][0] in {"CMD", "CMD-SHELL"}, name
    one_shots = [n for n, s in svcs.items() if s.get("restart") == "no"]
    assert one_shots == ["migrate"]
    for name, s in svcs.items():
        for dep, cond in (s.get("depends_on") or {}).items():
            expected = "service_completed_successfully" if dep in one_shots else "service_healthy"
            assert cond["condition"] == expected, (name, dep)


def test_compose_binds_the_clinic_to_loopback_and_alerting_uses_the_platform_account() -> None:
    svcs = services()
    assert svcs["clinic_api"]["ports"] == ["127.0.0.1:${CLINIC_PUBLIC_PORT:-8000}:8000"]
    alerting = svcs["alerting"]["environment"]
    assert isinstance(alerting, dict)
    assert alerting["EGENMON_ALERTING_MQTT_USERNAME"] == "platform"
    assert alerting["EGENMON_ALERTING_MQTT_PASSWORD"].startswith("${PLATFORM_MQTT_PASSWORD:?")
    assert alerting["EGENMON_ALERTING_MQTT_URL"].startswith("mqtts://")
    assert "mosquitto" in svcs["alerting"]["depends_on"]
    hc = " ".join(svcs["mosquitto"]["healthcheck"]["test"])
    assert "-u platform" in hc
    acl = (DEPLOY / "mosquitto" / "acl").read_text()
    platform_block = acl.split("user platform\n", 1)[1]
    assert "topic write egenmon/v1/gw/+/feedback\n" in platform_block


def test_compose_bind_mounts_exist_and_required_variables_are_documented() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    for s in services().values():
        for vol in s.get("volumes") or []:
            src = str(vol).split(":")[0]
            if src.startswith("./"):
                assert (DEPLOY / src).exists(), src
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert {"POSTGRES_PASSWORD", "PLATFORM_MQTT_PASSWORD", "INGEST_MQTT_PASSWORD"} <= required
    header = text.split("\nname:")[0]
    ops = (DEPLOY / "OPERATIONS.md").read_text()
    for var in required:
        assert f"#   {var}" in header, f"{var} is required but not in compose.yaml's header"
        assert var in ops, f"{var} is required but OPERATIONS.md never mentions it"


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    """Docker's own parser, where the compose plugin is installed (no daemon needed)."""
    docker = shutil.which("docker")
    has_compose = (
        docker is not None
        and subprocess.run([docker, "compose", "version"], check=False, capture_output=True).returncode == 0
    )
    if not has_compose:
        # This machine's docker CLI has no compose plugin: the checks above are the parser;
        # here at least every service resolves its anchors to a command or an image.
        for name, s in services().items():
            assert "command" in s or "image" in s, name
        return
    assert docker is not None
    env_file = tmp_path / ".env"
    values = dict.fromkeys(re.findall(r"\$\{(\w+):\?", (DEPLOY / "compose.yaml").read_text()), "x")
    values["MOSQUITTO_ETC"] = str(tmp_path)
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    out = subprocess.run(
        [docker, "compose", "--env-file", str(env_file), "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr


def _run_gateway_check(venv: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(DEPLOY / "check-gateway-install.sh")],
        env={"PATH": "/usr/bin:/bin", "EGENMON_GATEWAY_VENV": str(venv)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_gateway_install_check_refuses_a_missing_venv(tmp_path: Path) -> None:
    result = _run_gateway_check(tmp_path / "nothing")
    assert result.returncode == 1
    assert "no venv at" in result.stderr


def test_gateway_install_check_refuses_a_venv_with_server_packages(tmp_path: Path) -> None:
    # The test environment holds the server extra too: exactly the wrong install the check
    # exists to catch on a Pi.
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python").symlink_to(sys.executable)
    result = _run_gateway_check(tmp_path)
    assert result.returncode == 1, result.stdout
    assert "numpy is installed: install the wheel with [gateway]" in result.stderr
