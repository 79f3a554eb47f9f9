"""The examples in README.md and docs/*.md run as shown: a stale "real output" block fails.

Convention, in the markdown: an HTML comment on the line before a fenced block says how the
block is checked.

    <!-- docs-check: run [rows=any] [lines=any] [sim="--symbols 40 ..."] [file=NAME] -->
    <!-- docs-check: skip REASON -->

`run` on a block of `$ COMMAND` lines and their output: each command runs (in a scratch
folder beside a link to ../shared, with its own store), in file order, so later blocks see
what earlier ones imported; the output must have the doc's shape: the same tables (titles
with digits masked, headers, row counts unless `rows=any` or the doc elides rows with `…`),
the same JSON keys, and the same other lines with digits masked (`lines=any`: not compared).
Exit codes must be 0, or what a following `$ echo $?` shows. `run` on a block of bare
commands (a ```bash block) runs each and wants exit code 0. `sim=` starts a simulator (frozen
clock) for the block and points OIRADAR_ENDPOINT at it; `$ oiradar sim ... &` in a block
does the same, and URLs of 127.0.0.1 in later commands become its own. `file=NAME` writes the
nearest ```toml block above the marker to NAME first. A block with a `$ oiradar` line and no
marker fails: every real-output block says how it is checked.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from oiradar.units import parse_time
from tests.conftest import ROOT, SHARED, run_cli
from tests.simkit import threaded

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"^<!-- docs-check: (run|skip)\b(.*?)-->\s*$")
FENCE = re.compile(r"^```(\w*)\s*$")
URL = re.compile(r"http://127\.0\.0\.1:\d+")


@dataclass
class Block:
    doc: Path
    line: int  # 1-based line of the opening fence
    lang: str
    body: list[str]
    mode: str | None  # "run", "skip" or None (no marker)
    options: dict[str, str] = field(default_factory=dict)
    toml_above: str | None = None

    @property
    def where(self) -> str:
        return f"{self.doc.name}:{self.line}"

    @property
    def shows_output(self) -> bool:
        return any(x.startswith("$ ") for x in self.body)


def blocks(doc: Path) -> list[Block]:
    lines = doc.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    last_toml: str | None = None
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        marker = MARKER.match(lines[i - 1]) if i else None
        options = {
            key: quoted or bare
            for key, quoted, bare in re.findall(r'(\w+)=(?:"([^"]*)"|(\S+))', marker.group(2))
        } if marker else {}  # fmt: skip
        body = lines[i + 1 : end]
        mode = marker.group(1) if marker else None
        out.append(Block(doc, i + 1, m.group(1), body, mode, options, last_toml))
        if m.group(1) == "toml":
            last_toml = "\n".join(body) + "\n"
        i = end + 1
    return out


# -- comparing output by shape ---------------------------------------------------------------


def mask(text: str) -> str:
    """Digits masked, spacing collapsed: what may vary between two runs of one example."""
    return " ".join(re.sub(r"\d+", "9", text).split())


@dataclass
class Shape:
    tables: list[tuple[str, list[str], int | None]] = field(default_factory=list)
    json_keys: list[str] | None = None
    lines: list[str] = field(default_factory=list)


def shape(text: str) -> Shape:
    """Tables (title, headers, rows or None when elided), JSON keys, and the other lines
    (sorted: stderr and stdout may interleave either way)."""
    out = Shape()
    stripped = text.strip()
    if stripped.startswith(("[", "{")):
        out.json_keys = _json_keys(stripped)
        return out
    others: list[str] = []
    title: str | None = None  # the line just above a table's top border
    table: tuple[str, list[str], int | None] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("┏"):
            table = (mask(title or ""), [], 0)
            if title is not None:
                others.pop()
        elif table is not None and line.startswith("┃"):
            table[1].extend(c.strip() for c in line.strip("┃").split("┃"))
        elif table is not None and line.startswith("│"):
            table = (table[0], table[1], None if table[2] is None else table[2] + 1)
        elif table is not None and line == "…":
            table = (table[0], table[1], None)
        elif table is not None and line.startswith("└"):
            out.tables.append(table)
            table = None
        elif table is not None:
            continue  # ┡ ├ rules inside the table
        else:
            others.append(mask(line))
            title = line
            continue
        title = None
    out.lines = sorted(others)
    return out


def _json_keys(text: str) -> list[str]:
    """The keys of the first object (an array's first element, or the object itself)."""
    try:
        doc = json.loads(text)
    except ValueError:  # the doc elides the rest of the array with "…"
        indent = 4 if text.startswith("[") else 2
        keys: list[str] = []
        for line in text.splitlines()[1:]:
            m = re.match(rf'^ {{{indent}}}"(\w+)":', line)
            if m:
                keys.append(m.group(1))
            elif re.match(rf"^ {{{indent - 2}}}[}}\]]", line):
                break
        return keys
    first = doc[0] if isinstance(doc, list) and doc else doc
    return list(first) if isinstance(first, dict) else []


def compare(block: Block, command: str, expected: str, actual: str) -> None:
    want, got = shape(expected), shape(actual)
    where = f"{block.where}: `{command}`"
    if want.json_keys is not None:
        assert got.json_keys == want.json_keys, f"{where}: JSON keys differ"
        return
    assert len(got.tables) == len(want.tables), f"{where}: {len(got.tables)} table(s)\n{actual}"
    rows_any = block.options.get("rows") == "any"
    for (w_title, w_head, w_rows), (g_title, g_head, g_rows) in zip(
        want.tables, got.tables, strict=True
    ):
        assert g_head == w_head, f"{where}: table headers differ\n{actual}"
        assert g_title == w_title, f"{where}: table title differs\n{actual}"
        if w_rows is not None and not rows_any:
            assert g_rows == w_rows, f"{where}: {g_rows} rows, the doc shows {w_rows}\n{actual}"
    if block.options.get("lines") != "any":
        assert got.lines == want.lines, f"{where}: other lines differ\n{actual}"


# -- running a doc ---------------------------------------------------------------------------


@dataclass
class Session:
    """One doc's scratch folder, store and simulators, in file order."""

    cwd: Path
    stack: ExitStack
    env: dict[str, str]
    sim_url: str | None = None
    last_code: int = 0

    def start_sim(self, args: list[str]) -> str:
        opts = dict(zip(args[::2], args[1::2], strict=False))
        kw: dict[str, Any] = {"speed": 0.0}
        if "--symbols" in opts:
            kw["symbols"] = int(opts["--symbols"])
        if "--start" in opts:
            kw["start_ms"] = parse_time(opts["--start"])
        kw["symbols"] = kw.get("symbols", 50)
        sim = self.stack.enter_context(threaded(**kw))
        self.sim_url = sim.url
        self.env["OIRADAR_ENDPOINT"] = sim.url
        return f"listening on {sim.url}\n"

    def run(self, command: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
        if self.sim_url:
            command = URL.sub(self.sim_url, command)
        words = shlex.split(command, comments=True)
        if words == ["echo", "$?"]:
            return 0, f"{self.last_code}\n"
        env = dict(self.env)
        while words and re.match(r"^[A-Z_]+=", words[0]):
            key, _, value = words.pop(0).partition("=")
            env[key] = value
        background = words[-1:] == ["&"]
        words = words[:-1] if background else words
        target = None
        if ">" in words:
            target = self.cwd / words[words.index(">") + 1]
            words = words[: words.index(">")]
        if words[:2] == ["oiradar", "sim"]:
            assert background, "a simulator in the docs runs in the background (&)"
            return 0, self.start_sim(words[2:])
        if words[:2] == ["curl", "-s"]:
            with urllib.request.urlopen(words[2], timeout=10) as r:
                return 0, r.read().decode() + "\n"
        assert words[0] == "oiradar", f"cannot run {command!r} here"
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        res = run_cli(*words[1:])
        self.last_code = res.code
        if target is not None:
            target.write_text(res.out)
            return res.code, res.err
        return res.code, res.out + res.err


def _commands(body: list[str]) -> Iterator[tuple[str, str, int | None]]:
    """(command, the output shown after it, the exit code a following `echo $?` shows)."""
    steps: list[tuple[str, list[str]]] = []
    for line in body:
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
    for k, (command, shown) in enumerate(steps):
        if command == "echo $?":
            continue
        code = None
        if k + 1 < len(steps) and steps[k + 1][0] == "echo $?":
            code = int(steps[k + 1][1][0])
        yield command, "\n".join(shown), code


def needs_shared() -> None:
    if SHARED.is_dir():
        return
    reason = f"the docs' examples read {SHARED} (it sits beside the repository in CI)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


@pytest.mark.slow
@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_examples_run_as_the_docs_show(
    doc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = blocks(doc)
    unmarked = [b.where for b in found if b.mode is None and any(
        x.startswith("$ oiradar") for x in b.body)]  # fmt: skip
    assert not unmarked, f"real-output blocks without a docs-check marker: {unmarked}"
    todo = [b for b in found if b.mode == "run"]
    if not todo:
        return
    if any("../shared" in line for b in todo for line in b.body):
        needs_shared()
    cwd = tmp_path / "repo"
    cwd.mkdir()
    if SHARED.is_dir():
        (tmp_path / "shared").symlink_to(SHARED)
    (cwd / "labels").symlink_to(ROOT / "labels")  # the labelled episodes `evaluate` reads
    monkeypatch.chdir(cwd)
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.delenv("OIRADAR_CONFIG", raising=False)
    env = {"OIRADAR_DB": str(cwd / "oiradar.sqlite")}
    with ExitStack() as stack:
        session = Session(cwd, stack, env)
        for block in todo:
            run_block(session, block, monkeypatch)


def run_block(session: Session, block: Block, monkeypatch: pytest.MonkeyPatch) -> None:
    """One marked block: its setup options, then its commands, checked as the docs say."""
    if "sim" in block.options:
        session.start_sim(shlex.split(block.options["sim"]))
    if "file" in block.options:
        assert block.toml_above is not None, f"{block.where}: no toml block above"
        (session.cwd / block.options["file"]).write_text(block.toml_above)
    if block.shows_output:
        for command, shown, code in _commands(block.body):
            got_code, out = session.run(command, monkeypatch)
            assert got_code == (code or 0), f"{block.where}: `{command}`: {out}"
            if shown.strip():
                compare(block, command, shown, out)
        return
    for line in block.body:
        command = line.split("  #")[0].strip()
        if command and not command.startswith("#"):
            got_code, out = session.run(command, monkeypatch)
            assert got_code == 0, f"{block.where}: `{command}`: {out}"


def test_the_shape_comparison_catches_a_stale_block() -> None:
    """The checker itself: a changed header, row count or JSON key is caught."""
    table = (
        "   title: 2 event(s)   \n┏━━━┳━━━┓\n┃ a ┃ b ┃\n┡━━━╇━━━┩\n│ 1 │ 2 │\n│ 3 │ 4 │\n"
        "└───┴───┘\nnote: 5 bps\n"
    )
    block = Block(Path("x.md"), 1, "text", [], "run")
    compare(block, "cmd", table, table.replace("1 │ 2", "7 │ 8").replace("5 bps", "6 bps"))
    for stale in (
        table.replace("┃ b ┃", "┃ c ┃"),
        table.replace("│ 3 │ 4 │\n", ""),
        table.replace("note: 5 bps", "note: other"),
        table.replace("title", "titles"),
    ):
        with pytest.raises(AssertionError):
            compare(block, "cmd", table, stale)
    doc_json = '[\n  {\n    "a": 1,\n    "b": 2\n  },\n  …\n'
    compare(block, "cmd", doc_json, json.dumps([{"a": 3, "b": 4}], indent=2))
    with pytest.raises(AssertionError):
        compare(block, "cmd", doc_json, json.dumps([{"a": 3, "c": 4}], indent=2))


def test_the_readme_watch_recipe_is_the_replay_the_tests_run() -> None:
    """The README's watch replay is shown with the simulator start and the endpoint a user
    needs, and with the settings tests/test_watch.py replays (issue #12, item 5)."""
    from oiradar.commands.watch import _duration_ms
    from oiradar.units import interval_ms, iso
    from tests.test_watch import ADA_START, PARAMS, SETTLE, SPEED

    (block,) = [b for b in blocks(ROOT / "README.md") if any("oiradar watch" in x for x in b.body)]
    commands = [shlex.split(x[2:]) for x in block.body if x.startswith("$ ")]
    sim = next(c for c in commands if c[:2] == ["oiradar", "sim"])
    watch = next(c for c in commands if c[:2] == ["oiradar", "watch"])

    def opt(words: list[str], name: str) -> str:
        return words[words.index(name) + 1]

    assert parse_time(opt(sim, "--start")) == ADA_START, iso(ADA_START)
    assert float(opt(sim, "--speed")) == SPEED
    assert float(opt(sim, "--limit-scale")) == float(opt(watch, "--limit-scale")) == SPEED
    assert opt(watch, "--endpoint") == f"http://127.0.0.1:{opt(sim, '--port')}"
    assert "ADAUSDT" in opt(watch, "--symbols").split(",")
    assert interval_ms(opt(watch, "--min-history")) == PARAMS.min_history_ms
    assert _duration_ms(opt(watch, "--settle"), "--settle") == SETTLE
    shown = [x for x in block.body if x[:4].isdigit() and x.split()[3] == "ADAUSDT:"]
    assert [x.split()[2] for x in shown] == ["[new]", "[escalation]", "[exhaustion]"]
