"""The deployment files (Dockerfile, contrib/compose.yaml, contrib/oiradar-watch.service) run
commands nobody runs here (no Docker daemon, no systemd as PID 1): every command line in them
must parse with oiradar's own parser, and the linters that exist check the rest."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from oiradar.cli import full_app
from tests.conftest import ROOT

EXE = Path(sys.executable).parent / "oiradar"


def parses(argv: list[str]) -> Any:
    """`oiradar ARGV`'s command context, parsed as a run would (an unknown option, a bad
    value or an out-of-range port raises the parser's usage error); the command is not run."""
    group = typer.main.get_command(full_app())
    assert isinstance(group, typer.core.TyperGroup)
    root = group.make_context("oiradar", list(argv), resilient_parsing=True)
    name, command, rest = group.resolve_command(root, list(argv))
    assert command is not None, argv
    return command.make_context(str(name), rest, parent=root)


def dockerfile() -> dict[str, list[str]]:
    """Instructions whose argument is a JSON array (exec form), joined over continuations."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        m = re.match(r"(ENTRYPOINT|CMD|VOLUME|HEALTHCHECK\s.*?CMD)\s+(\[.*\])\s*$", line)
        if m:
            out[m.group(1).split()[0]] = json.loads(m.group(2))
    return out


def test_dockerfile_runs_real_commands_as_a_non_root_user_on_a_data_volume() -> None:
    text = (ROOT / "Dockerfile").read_text()
    forms = dockerfile()
    assert forms["ENTRYPOINT"] == ["oiradar"]
    assert parses(forms["CMD"]).info_name == "watch"
    health = forms["HEALTHCHECK"]
    assert health[0] == "oiradar" and parses(health[1:]).params["check"] is True
    assert forms["VOLUME"] == ["/data"]
    assert re.search(r"^\s*OIRADAR_DB=/data/oiradar\.sqlite", text, re.M)
    user = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert user and user[-1].split(":")[0] not in ("root", "0")


def test_compose_runs_watch_on_postgresql_with_real_flags() -> None:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "contrib" / "compose.yaml").read_text())
    services = doc["services"]
    assert services["db"]["image"] == "postgres:15"
    watch = services["watch"]
    ctx = parses([str(a) for a in watch["command"]])
    assert ctx.info_name == "watch" and ctx.params["serve"] is True
    env = watch["environment"]
    assert env["OIRADAR_DB"].startswith("postgresql://oiradar@db:")  # no password in the URL
    assert "OIRADAR_SERVE_TOKEN" in env  # needed: the dashboard listens on 0.0.0.0 inside
    assert all(p.startswith("127.0.0.1:") for p in watch["ports"])  # the host's loopback only
    assert watch["depends_on"]["db"]["condition"] == "service_healthy"
    assert "--collect-only" not in watch["command"]  # one plain watch until the split lands


def _unit() -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for line in (ROOT / "contrib" / "oiradar-watch.service").read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            keys.setdefault(key, []).append(value)
    return keys


def test_systemd_unit_restarts_keeps_state_and_is_hardened() -> None:
    unit = _unit()
    assert unit["Restart"] == ["on-failure"]
    assert unit["StateDirectory"] == ["oiradar"]
    assert unit["DynamicUser"] == ["yes"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices"):
        assert unit[key] == ["yes"], key
    assert unit["ProtectSystem"] == ["strict"]
    exe, *argv = unit["ExecStart"][0].split()
    assert exe.endswith("/oiradar") and parses(argv).info_name == "watch"
    assert "OIRADAR_DB=/var/lib/oiradar/oiradar.sqlite" in unit["Environment"]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    """With ExecStart pointing at this checkout's `oiradar` (verify checks that it exists)."""
    text = (ROOT / "contrib" / "oiradar-watch.service").read_text()
    unit = tmp_path / "oiradar-watch.service"
    unit.write_text(text.replace("/usr/local/bin/oiradar", str(EXE)))
    res = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0 and not res.stderr.strip(), res.stderr


@pytest.mark.skipif(not shutil.which("hadolint"), reason="hadolint not installed")
def test_hadolint_passes_the_dockerfile() -> None:
    res = subprocess.run(
        ["hadolint", "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
