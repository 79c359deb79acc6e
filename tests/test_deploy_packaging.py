"""Packaging: the gateway extra is exactly what the gateway needs, and the release builds.

The gateway runs on a Raspberry Pi: `pip install egenmon[gateway]` must not pull in the
server's numpy, FastAPI or psycopg, and must still be enough for gateway/ and
device_profiles/ to run. Checked twice: statically (every third-party import of those two
packages belongs to a declared distribution, and each declared one is imported) and for
real (a fresh venv that holds only those distributions imports every gateway module and
runs the CLI).
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import os
import subprocess
import sys
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
GATEWAY_SIDE = ("gateway", "device_profiles")
# Distributions only the server side uses: none may reach the gateway's import graph.
SERVER_ONLY = {"numpy", "fastapi", "psycopg", "starlette", "sqlalchemy", "alembic", "uvicorn", "jinja2"}


def _pyproject() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def _canon(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _gateway_requirements() -> list[Requirement]:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    reqs = [*project["dependencies"], *project["optional-dependencies"]["gateway"]]
    return [Requirement(r) for r in reqs]


def _closure(reqs: list[Requirement]) -> set[str]:
    """Every distribution pip would install for these requirements (markers evaluated here)."""
    seen: set[str] = set()
    todo = [(r, frozenset(r.extras)) for r in reqs]
    while todo:
        req, extras = todo.pop()
        name = _canon(req.name)
        if name == "egenmon":
            continue
        key = name + "[" + ",".join(sorted(extras)) + "]"
        if key in seen:
            continue
        seen.add(key)
        for raw in md.requires(req.name) or []:
            sub = Requirement(raw)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in (extras or {""})):
                todo.append((sub, frozenset(sub.extras)))
    return {k.split("[")[0] for k in seen}


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level module -> files of gateway/ and device_profiles/ that import it."""
    first_party = {"gateway", "device_profiles", "__future__"}
    found: dict[str, set[str]] = {}
    for pkg in GATEWAY_SIDE:
        for path in (ROOT / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in first_party and top not in sys.stdlib_module_names:
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_gateway_imports_only_what_the_gateway_extra_declares() -> None:
    declared = {_canon(r.name) for r in _gateway_requirements()}
    module_to_dists = md.packages_distributions()
    imported: dict[str, set[str]] = {}
    for module, files in _third_party_imports().items():
        dists = {_canon(d) for d in module_to_dists.get(module, [])}
        assert dists, f"{module} (imported by {sorted(files)}) belongs to no installed distribution"
        assert dists & declared, f"{module} (imported by {sorted(files)}) is not in the gateway extra: {dists}"
        for d in dists & declared:
            imported.setdefault(d, set()).update(files)
    assert declared == set(imported), f"declared but never imported: {declared - set(imported)}"
    # The point of the extra: the server's heavy dependencies stay off the Pi.
    assert not SERVER_ONLY & _closure(_gateway_requirements())


def _only_gateway_venv(tmp_path: Path) -> tuple[Path, Path]:
    """A fresh venv whose site-packages holds only the gateway extra's distributions
    (linked from this interpreter's, so no network) and egenmon's gateway side."""
    env_dir = tmp_path / "gwvenv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    for dist_name in _closure(_gateway_requirements()):
        dist = md.distribution(dist_name)
        base = Path(str(dist.locate_file("")))
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            src = base / top
            if src.exists() and not (site / top).exists() and top != "__pycache__":
                (site / top).symlink_to(src)
    for pkg in GATEWAY_SIDE:
        (site / pkg).symlink_to(ROOT / pkg)
    return python, site


@pytest.fixture(scope="module")
def gateway_venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _only_gateway_venv(tmp_path_factory.mktemp("pkg"))


def test_every_gateway_module_imports_in_a_venv_with_only_the_gateway_extra(
    gateway_venv: tuple[Path, Path],
) -> None:
    python, site = gateway_venv
    assert not (site / "numpy").exists()
    assert not (site / "fastapi").exists()
    code = (
        "import importlib, pkgutil, sys\n"
        "import gateway, device_profiles\n"
        "for pkg in (gateway, device_profiles):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        if not m.name.endswith('.__main__'):\n"
        "            importlib.import_module(m.name)\n"
        f"bad = sorted(n for n in sys.modules if n.split('.')[0] in {sorted(SERVER_ONLY)!r})\n"
        "assert not bad, bad\n"
        "for server in ('numpy', 'fastapi', 'psycopg', 'ingest'):\n"
        "    try:\n"
        "        importlib.import_module(server)\n"
        "    except ModuleNotFoundError:\n"
        "        pass\n"
        "    else:\n"
        "        raise AssertionError(server + ' is importable: the venv is not isolated')\n"
        "print('ok', gateway.__version__)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
    out = subprocess.run(
        [python, "-c", code], check=False, capture_output=True, text=True, env=env, cwd="/", timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"ok {_declared_version()}"


def test_gateway_cli_runs_in_a_venv_with_only_the_gateway_extra(
    gateway_venv: tuple[Path, Path], tmp_path: Path
) -> None:
    python, _ = gateway_venv
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME"}}
    env["EGENMON_GATEWAY_STATE_DIR"] = str(tmp_path)
    helped = subprocess.run(
        [python, "-m", "gateway", "--help"], check=False, capture_output=True, text=True, env=env, cwd="/"
    )
    assert helped.returncode == 0, helped.stderr
    for command in ("run", "enroll", "scan", "pair", "status"):
        assert command in helped.stdout
    # Not enrolled: the CLI says so and exits non-zero, having loaded its settings and outbox code.
    status = subprocess.run(
        [python, "-m", "gateway", "run"], check=False, capture_output=True, text=True, env=env, cwd="/"
    )
    assert status.returncode != 0
    assert "Traceback" not in status.stderr, status.stderr
    assert "enrol" in (status.stdout + status.stderr).lower()


def _declared_version() -> str:
    text = (ROOT / "device_profiles" / "__init__.py").read_text()
    for node in ast.parse(text).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__version__" for t in node.targets):
            assert isinstance(node.value, ast.Constant)
            return str(node.value.value)
    raise AssertionError("device_profiles.__version__ is missing")


def test_version_is_written_in_one_place() -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    assert "version" not in project
    assert project["dynamic"] == ["version"]
    assert _pyproject()["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "device_profiles.__version__"}  # type: ignore[index]
    hits = [
        str(p.relative_to(ROOT))
        for pkg in ("gateway", "schema", "ingest", "alerting", "clinic_api", "simulators", "deploy", "device_profiles")
        for p in (ROOT / pkg).rglob("*.py")
        if f'"{_declared_version()}"' in p.read_text()
    ]
    assert hits == ["device_profiles/__init__.py"]


def test_release_tooling_is_declared_and_dist_is_ignored() -> None:
    dev = [Requirement(r) for r in _pyproject()["project"]["optional-dependencies"]["dev"]]  # type: ignore[index]
    build = [r for r in dev if r.name == "build"]
    assert build, "build is not a dev dependency"
    assert any(s.operator == ">=" for s in build[0].specifier)
    assert "dist/" in (ROOT / ".gitignore").read_text().splitlines()
    script = (ROOT / "dev").read_text()
    assert "release)" in script
    assert "-m build --outdir dist" in script


@pytest.mark.slow
def test_wheel_carries_the_version_and_the_extras(tmp_path: Path) -> None:
    # pip builds through the same PEP 517 backend as `./dev release` (python -m build).
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    (wheel,) = tmp_path.glob("egenmon-*.whl")
    assert wheel.name == f"egenmon-{_declared_version()}-py3-none-any.whl"

    with zipfile.ZipFile(wheel) as zf:
        meta = zf.read(f"egenmon-{_declared_version()}.dist-info/METADATA").decode()
        names = zf.namelist()
    assert "Provides-Extra: gateway" in meta
    assert "Provides-Extra: server" in meta
    assert 'Requires-Dist: numpy>=1.26; extra == "server"' in meta
    assert 'Requires-Dist: bleak>=0.22; extra == "gateway"' in meta
    assert "deploy/mosquitto/mosquitto.conf" in names
    # The schema's migrations travel with the wheel (egenmon-schema upgrade runs from it).
    versions = sorted(p.name for p in (ROOT / "schema" / "migrations" / "versions").glob("[0-9]*.py"))
    assert versions
    for name in ("schema/migrations/env.py", "schema/migrations/script.py.mako", "schema/notify.py"):
        assert name in names, name
    for v in versions:
        assert f"schema/migrations/versions/{v}" in names, v
    assert not [n for n in names if n.startswith("ingest/migrations/")]
