"""The docs follow the code: docs/cli.md is the real --help, every command is documented."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _generator() -> ModuleType:
    """scripts/ is not a package; load the generator from its file."""
    path = ROOT / "scripts" / "gen_cli_docs.py"
    spec = importlib.util.spec_from_file_location("gen_cli_docs", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gen() -> ModuleType:
    return _generator()


@pytest.fixture(scope="module")
def commands(gen: ModuleType) -> list[str]:
    names: list[str] = gen.command_names()
    return names


def test_cli_md_is_current(gen: ModuleType) -> None:
    assert gen.is_current(DOCS / "cli.md"), (
        "docs/cli.md is out of date: run python scripts/gen_cli_docs.py"
    )


def test_generator_sees_the_core_commands(commands: list[str]) -> None:
    assert {"import", "export", "info", "analyze", "regimes"} <= set(commands)


@pytest.fixture(scope="module")
def paths(gen: ModuleType) -> list[str]:
    """Every command with its group: `scan`, ..., `config init`, `alerts test`."""
    return [" ".join(words) for words in gen.command_paths()]


def test_every_command_has_a_section_in_cli_md(paths: list[str]) -> None:
    """Subcommands of groups too: `config init`, `config check`, `alerts test` (#12)."""
    assert {"config init", "config check", "alerts test"} <= set(paths)
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    missing = [c for c in paths if f"\n## oiradar {c}\n" not in text]
    assert not missing, f"no section in docs/cli.md for: {', '.join(missing)}"


def test_every_command_is_mentioned_outside_the_reference(paths: list[str]) -> None:
    """Beyond the generated reference, README.md or a written doc names each command."""
    sources = [ROOT / "README.md", *(p for p in DOCS.glob("*.md") if p.name != "cli.md")]
    text = "\n".join(p.read_text(encoding="utf-8") for p in sources if p.is_file())
    missing = [c for c in paths if not re.search(rf"\boiradar {re.escape(c)}\b", text)]
    assert not missing, f"not mentioned in README.md or docs/: {', '.join(missing)}"


def test_check_mode_reports_a_stale_file(gen: ModuleType, tmp_path: Path) -> None:
    stale = tmp_path / "cli.md"
    stale.write_text(gen.render() + "\nhand edit\n", encoding="utf-8")
    assert not gen.is_current(stale)
    assert not gen.is_current(tmp_path / "absent.md")


def test_help_lists_commands_in_one_order_whichever_ran_first(tmp_path: Path) -> None:
    """Commands register as their module is imported: `oiradar status` run in-process first
    (a test, a notebook) must not move `watch` and `status` to the top of `--help`."""
    import subprocess
    import sys

    code = (
        "import sys; sys.path[:0] = ['scripts', '.']\n"
        "from tests.conftest import run_cli\n"
        f"run_cli('--db', {str(tmp_path / 'none.sqlite')!r}, 'status')\n"
        "import gen_cli_docs\n"
        "sys.exit(0 if gen_cli_docs.is_current() else 1)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=False)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
