"""The real CLI: outputs, JSON shape, and one-line errors with non-zero exits."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from oiradar.cli import full_app
from oiradar.store.schema import SCHEMA_VERSION
from tests.conftest import run_cli
from tests.test_archive import kline_rows, write

app = full_app()

COMMANDS = sorted(c.name or "" for c in app.registered_commands)
REQUIRED_EVENT_KEYS = {
    "venue",
    "symbol",
    "regime",
    "start",
    "end",
    "oi_change_pct",
    "price_change_pct",
    "tier",
    "confidence",
    "funding_rate",
    "more_to_come",
    "short_liq_usd",
    "long_liq_usd",
    "squeeze",
}


def test_every_command_explains_itself() -> None:
    assert {"analyze", "regimes", "import", "export", "info"} <= set(COMMANDS)
    top = run_cli("--help")
    assert top.code == 0 and "short covering" in top.out
    for name in COMMANDS:
        res = run_cli(name, "--help")
        assert res.code == 0, name
        assert "Usage: oiradar" in res.out and len(res.out) > 300, name


def test_analyze_json_shape(real_db: Path) -> None:
    res = run_cli(
        "--db",
        str(real_db),
        "analyze",
        "btcusdt",
        "--from",
        "2024-08-01",
        "--to",
        "2024-08-20",
        "--format",
        "json",
    )
    assert res.code == 0, res.err
    events = json.loads(res.out)
    assert [e["start"] for e in events] == [
        "2024-08-04T18:00:00Z",
        "2024-08-05T07:00:00Z",
        "2024-08-05T14:00:00Z",
        "2024-08-08T01:00:00Z",
        "2024-08-08T21:00:00Z",
        "2024-08-12T14:00:00Z",
        "2024-08-16T02:00:00Z",
        "2024-08-16T13:00:00Z",
    ]
    for ev in events:
        assert ev.keys() >= REQUIRED_EVENT_KEYS
        assert ev["start"].endswith("Z") and ev["end"].endswith("Z")
        assert ev["regime"] in ("SHORT_COVERING", "SHORT_SQUEEZE")
        assert ev["squeeze"] is (ev["regime"] == "SHORT_SQUEEZE")


def test_analyze_all_regimes_and_csv(real_db: Path) -> None:
    res = run_cli(
        "--db",
        str(real_db),
        "analyze",
        "ETHUSDT",
        "--regime",
        "all",
        "--format",
        "csv",
        "--from",
        "2024-08-04",
        "--to",
        "2024-08-09",
    )
    assert res.code == 0, res.err
    lines = res.out.strip().splitlines()
    assert lines[0].startswith("venue,symbol,interval,regime,start,end")
    regimes = {line.split(",")[3] for line in lines[1:]}
    assert {"LONG_LIQUIDATION", "SHORT_SQUEEZE"} <= regimes


def test_table_output_and_regimes_timeline(real_db: Path) -> None:
    res = run_cli(
        "--db", str(real_db), "analyze", "BTCUSDT", "--from", "2024-06-25", "--to", "2024-06-26"
    )
    assert res.code == 0 and "2024-06-25 18:00" in res.out and "SHORT_COVERING" in res.out
    tl = run_cli(
        "--db",
        str(real_db),
        "regimes",
        "DOGEUSDT",
        "--from",
        "2024-09-18T18:00Z",
        "--to",
        "2024-09-18T18:40Z",
        "--window",
        "1h",
        "--format",
        "json",
    )
    bars = json.loads(tl.out)
    assert len(bars) == 9 and bars[0]["regime"] == "SHORT_COVERING"
    # The last bar in range still gets its OI snapshot, taken at its close (18:45).
    assert bars[-1]["regime"] == "NEUTRAL" and bars[-1]["oi_base"] is not None
    first = run_cli(
        "--db",
        str(real_db),
        "regimes",
        "DOGEUSDT",
        "--to",
        "2024-09-13T22:00Z",
        "--window",
        "1h",
        "--format",
        "json",
    )
    head = json.loads(first.out)
    # Until a whole window of history exists there is no change: NO_DATA, flagged, never 0 %.
    assert head[0]["ts"] == "2024-09-13T21:00:00Z"
    assert all(
        b["regime"] == "NO_DATA" and b["data_gap"] and b["oi_change_pct"] is None for b in head[:12]
    )
    assert head[12]["regime"] != "NO_DATA" and head[12]["oi_change_pct"] is not None
    assert {"oi_15m_pct", "price_1h_pct"} <= bars[0].keys()


def test_reference_mode_via_cli(real_db: Path) -> None:
    res = run_cli(
        "--db",
        str(real_db),
        "regimes",
        "DOGEUSDT",
        "--reference",
        "--from",
        "2024-09-18T18:30Z",
        "--to",
        "2024-09-18T18:40Z",
        "--format",
        "json",
    )
    assert res.code == 0, res.err
    assert [b["regime"] for b in json.loads(res.out)] == ["NONE", "SHORT_COVERING", "NONE"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["analyze", "NOPEUSDT"], "no candles for NOPEUSDT on binance"),
        (["analyze", "BTCUSDT", "--from", "2024-13-45"], "invalid time '2024-13-45'"),
        (
            ["analyze", "BTCUSDT", "--from", "2030-01-01"],
            "no 5m candles for BTCUSDT on binance in the requested range; "
            "stored: 2024-09-13T21:00:00Z",
        ),
        (["analyze", "BTCUSDT", "--from", "2024-08-02", "--to", "2024-08-01"], "empty range"),
        (["analyze", "BTCUSDT", "--oi-threshold", "-1"], "--oi-threshold must be a positive"),
        (
            ["analyze", "BTCUSDT", "--price-threshold", "nan"],
            "--price-threshold must be a positive",
        ),
        (["analyze", "BTCUSDT", "--oi-threshold", "abc"], "Invalid value for '--oi-threshold'"),
        (["analyze", "BTCUSDT", "--window", "7x"], "invalid interval '7x'"),
        (
            ["analyze", "BTCUSDT", "--interval", "1h", "--window", "15m"],
            "not a multiple of the data's bar size 1h",
        ),
        (["analyze", "BTCUSDT", "--regime", "moon"], "unknown regime 'moon'"),
        (["analyze", "ETHUSDT", "--reference"], "reference mode needs 5m data"),
        (["analyze", "BTCUSDT", "--reference", "--oi-threshold", "2"], "drop --window"),
        (["analyze", "BTCUSDT", "--venue", "bybit"], "no candles for BTCUSDT on bybit"),
        (["analyze"], "Missing argument 'symbol'"),
        (["import", "/nonexistent/x.csv"], "no such file or directory"),
        (["nosuchcommand"], "No such command"),
        # Found by a fuzzer (issue #17): each was exit 70 "internal error".
        (["analyze", "BTCUSDT", "--from", "²"], "invalid time '²'"),
        (["analyze", "BTCUSDT", "--from", "99999999999999999999"], "invalid time"),
        (["analyze", "BTCUSDT", "--to", "0001-01-01"], "a time from 1970 to 2999"),
        (["regimes", "BTCUSDT", "--from", "²"], "invalid time '²'"),
        (["chart", "BTCUSDT", "--to", "0001-01-01"], "a time from 1970 to 2999"),
        (["serve", "--port", "70000"], "Invalid value for '--port'"),
        (["sim", "--port", "70000"], "Invalid value for '--port'"),
        (["watch", "--serve", "--port", "70000"], "Invalid value for '--port'"),
    ],
)
def test_bad_input_is_one_clear_line(real_db: Path, args: list[str], message: str) -> None:
    res = run_cli("--db", str(real_db), *args)
    assert res.code != 0
    lines = res.err.strip().splitlines()
    assert len(lines) == 1, res.err
    assert lines[0].startswith("oiradar: error:") and message in lines[0], lines[0]
    assert "Traceback" not in res.err + res.out


def test_db_option_precedence(
    real_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Subcommand --db beats root --db, which beats OIRADAR_DB."""
    monkeypatch.setenv("OIRADAR_DB", str(tmp_path / "env.sqlite"))
    root = run_cli("--db", str(real_db), "info", "--format", "json")
    sub = run_cli("info", "--db", str(real_db), "--format", "json")
    env = run_cli("info")
    assert root.code == sub.code == 0 and json.loads(root.out) == json.loads(sub.out)
    assert env.code == 2 and "env.sqlite" in env.err


def test_a_store_in_the_wrong_place_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder as the store, a file where its folder should be, a URL no backend serves:
    each a user error naming what is wrong, and nothing created in the working directory."""
    (tmp_path / "afile").write_text("")
    monkeypatch.chdir(tmp_path)
    cases = [
        (["info", "--db", str(tmp_path)], "is a folder"),
        (["import", str(tmp_path / "afile"), "--db", "afile/s.sqlite"], "cannot create"),
        (["info", "--db", "mysql://me:s3cret@db.example/oiradar"], "no store backend"),
    ]
    for args, message in cases:
        res = run_cli(*args)
        assert res.code == 2 and message in res.err and len(res.err.splitlines()) == 1, res.err
        assert "s3cret" not in res.err
    monkeypatch.setenv("OIRADAR_DB", "mysql://me:s3cret@db.example/oiradar")
    res = run_cli("info")
    assert res.code == 2 and "no store backend for mysql://" in res.err and "s3cret" not in res.err
    assert "s3cret" not in res.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_asking_for_covering_and_squeezes_lists_each_event_once(real_db: Path) -> None:
    def starts(regime: str) -> list[str]:
        res = run_cli("--db", str(real_db), "analyze", "BTCUSDT", "--from", "2024-08-01",
                      "--to", "2024-08-20", "--regime", regime, "--format", "json")  # fmt: skip
        assert res.code == 0, res.err
        return [e["start"] for e in json.loads(res.out)]

    both = starts("short_covering,short_squeeze")
    assert len(both) == 8 and both == starts("short_covering")


def test_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    res = run_cli("--db", str(tmp_path / "none.sqlite"), "analyze", "BTCUSDT")
    assert res.code == 2 and "no store at" in res.err and "oiradar import" in res.err


def test_import_reports_and_rejects(tmp_path: Path) -> None:
    db = str(tmp_path / "s.sqlite")
    good = write(tmp_path / "in" / "BTCUSDT-5m-2024-03-01.csv", kline_rows(20))
    rows = kline_rows(20)
    rows[3] = rows[3].replace(",", ";", 1)
    write(tmp_path / "in" / "ETHUSDT-5m-2024-03-01.csv", rows)
    res = run_cli("--db", db, "import", str(tmp_path / "in"), "--format", "json")
    assert res.code == 2
    assert json.loads(res.out) == [
        {
            "kind": "candles",
            "venue": "binance",
            "symbol": "BTCUSDT",
            "rows": 20,
            "new_or_changed": 20,
        }
    ]
    assert "ETHUSDT-5m-2024-03-01.csv:4:" in res.err
    again = run_cli("--db", db, "import", str(good), "--format", "json")
    assert again.code == 0 and json.loads(again.out)[0]["new_or_changed"] == 0
    info = run_cli("--db", db, "info", "--format", "json")
    doc = json.loads(info.out)
    # Where the store is and its schema, as store.md lists (issue #12, item 14).
    assert doc["path"] == db and doc["schema_version"] == SCHEMA_VERSION
    assert doc["series"] == [
        {
            "kind": "candles",
            "venue": "binance",
            "symbol": "BTCUSDT",
            "interval": "5m",
            "rows": 20,
            "first": "2024-03-01T00:00:00Z",
            "last": "2024-03-01T01:35:00Z",
        }
    ]


@pytest.mark.parametrize(
    ("header", "symbol", "message"),
    [
        ("symbol", "BTC$USDT;DROP TABLE candles", ":2: symbol is not like BTCUSDT"),
        ("symbol", "X" * 100_000, ":2: symbol is not like BTCUSDT"),
        ("symbol", "BTCUSDT\u00b2", ":2: symbol is not like BTCUSDT"),
        ("symbol,symbol", "BTCUSDT,BTCUSDT", ":1: column(s) symbol appear more than once"),
    ],
)
def test_import_refuses_what_no_command_could_ask_for(
    tmp_path: Path, header: str, symbol: str, message: str
) -> None:
    path = tmp_path / "candles.csv"
    path.write_text(f"ts_ms,venue,{header},interval,open,high,low,close,volume_base\n"
                    f"1717200000000,binance,{symbol},5m,1,1,1,1,1\n")  # fmt: skip
    res = run_cli("--db", str(tmp_path / "s.sqlite"), "import", str(path))
    assert res.code == 2 and message in res.err, res.err
    assert len(res.err) < 400  # the 100,000-character name is not echoed whole


def test_export_command(real_db: Path, tmp_path: Path) -> None:
    res = run_cli(
        "--db", str(real_db), "export", "--out", str(tmp_path / "x"), "--symbol", "sol-usdt"
    )
    assert res.code == 0, res.err
    assert "candles.csv\t1463 rows" in res.out
    bad = run_cli(
        "--db", str(real_db), "export", "--out", str(tmp_path / "y"), "--file-format", "xls"
    )
    assert bad.code == 2 and "csv or parquet" in bad.err


def test_installed_console_script_runs(real_db: Path) -> None:
    exe = shutil.which("oiradar", path=str(Path(sys.executable).parent))
    assert exe, "the oiradar console script is not installed next to this Python"
    env = {**os.environ, "OIRADAR_DB": str(real_db)}
    proc = subprocess.run(
        [
            exe,
            "analyze",
            "SOLUSDT",
            "--from",
            "2024-08-12",
            "--to",
            "2024-08-14",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert [e["start"] for e in json.loads(proc.stdout)] == [
        "2024-08-12T07:00:00Z",
        "2024-08-12T11:00:00Z",
        "2024-08-12T23:00:00Z",
        "2024-08-13T16:00:00Z",
        "2024-08-13T21:00:00Z",
    ]
    bad = subprocess.run(
        [exe, "analyze", "SOLUSDT", "--from", "soon"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_the_bar_size_used_is_named_when_others_are_stored(tmp_path: Path) -> None:
    """The finest stored bar size is used unless --interval says otherwise: analyze, regimes
    and backtest say which one and that others exist; info lists them (issue #12, item 12)."""
    from oiradar.records import Candle, OISample
    from oiradar.store import open_store
    from tests.test_backtest import _hourly_store, two_events

    db = tmp_path / "two-sizes.sqlite"
    _hourly_store(db, ("AAAUSDT",))  # 1h bars from 2024-06-01, 400 of them
    five = two_events()  # 5m bars from the same start, 900 of them
    with open_store(db) as store:
        store.write_records(
            [Candle("binance", "AAAUSDT", 300_000, int(t), c, c, c, c, 1.0)
             for t, c in zip(five.candle_ts, five.close, strict=True)]
            + [OISample("binance", "AAAUSDT", int(t) + 1, float(o))
               for t, o in zip(five.oi_ts, five.oi_base, strict=True)]
        )  # fmt: skip
    note = (
        "AAAUSDT on binance: 5m bars, the finest stored; also stored: 1h "
        "(choose with --interval 1h)"
    )
    for command in ("analyze", "regimes"):
        res = run_cli("--db", str(db), command, "AAAUSDT", "--format", "json")
        assert res.code == 0, res.err
        assert f"note: {note}" in res.err
        json.loads(res.out)  # stdout stays clean JSON
        chosen = run_cli("--db", str(db), command, "AAAUSDT", "--interval", "1h")
        assert chosen.code == 0 and "note:" not in chosen.err
    study = run_cli("--db", str(db), "backtest")
    assert study.code == 0, study.err
    assert "5m bars over 15m+30m+1h: AAAUSDT" in study.err
    assert "also stored: AAAUSDT 1h" in study.err
    rows = json.loads(run_cli("--db", str(db), "info", "--format", "json").out)["series"]
    assert [(r["kind"], r["interval"]) for r in rows if r["kind"] == "candles"] == [
        ("candles", "5m"),
        ("candles", "1h"),
    ]
