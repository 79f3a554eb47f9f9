"""Start-up imports only what the command line asks for: `--version` no command at all,
`oiradar scan` only scan's module (bench/startup.py measures the times)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from oiradar.cli import COMMANDS, command_of, full_app
from oiradar.lifecycle import run


def _imported_after(args: list[str]) -> set[str]:
    code = (
        "import sys; from oiradar.cli import main; rc = main(sys.argv[1:]); "
        "print(' '.join(sorted(sys.modules)), file=sys.stderr); sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return set(proc.stderr.split())


def test_the_table_names_every_command_where_it_is_registered() -> None:
    app = full_app()
    where = {c.name: c.callback.__module__ for c in app.registered_commands if c.callback}
    for group in app.registered_groups:
        sub = group.typer_instance
        modules = {c.callback.__module__ for c in sub.registered_commands if c.callback}
        assert len(modules) == 1, modules
        where[sub.info.name] = modules.pop()
    assert where == {name: f"oiradar.commands.{module}" for name, module in COMMANDS.items()}


@pytest.mark.parametrize(
    ("args", "word"),
    [(["--db", "scan", "info"], "info"), (["--debug", "scan", "-h"], "scan"), (["-h"], None)],
)
def test_the_command_word_skips_root_options(args: list[str], word: str | None) -> None:
    assert command_of(args) == word


def test_version_imports_no_command_line() -> None:
    loaded = _imported_after(["--version"])
    assert not {m for m in loaded if m.startswith(("typer", "oiradar.commands", "numpy"))}


def test_scan_imports_only_its_own_command() -> None:
    loaded = _imported_after(["scan", "--help"])
    commands = {m.rsplit(".", 1)[1] for m in loaded if m.startswith("oiradar.commands.")}
    assert commands == {"app", "scan", "engine_options", "selection"}
    assert not {m for m in loaded if m.split(".")[0] in ("polars", "matplotlib", "plotly")}


class _Loud:
    """A result that counts how often it is formatted."""

    formatted = 0

    def __repr__(self) -> str:
        _Loud.formatted += 1
        return "loud"


def test_run_hands_back_the_result_without_formatting_it() -> None:
    """`asyncio.run` reads its SIGINT handler back on the way out, and that names the main
    task with its result: a 300-symbol scan's result took ~50 ms to format, every run."""

    async def main() -> _Loud:
        return _Loud()

    _Loud.formatted = 0
    assert isinstance(run(main()), _Loud)
    assert _Loud.formatted == 0
