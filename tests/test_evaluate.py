"""`oiradar evaluate` and the acceptance of the defaults on every labelled real data set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oiradar.research.evaluation import Label, LabelRow, score, summarize
from oiradar.services.evaluate import read_labels
from oiradar.signals.engine import timeline
from oiradar.signals.params import EngineParams
from oiradar.units import MINUTE_MS, parse_time
from tests.conftest import ROOT, run_cli
from tests.synth import FIVE_MIN, T0, series

LABELS = ROOT / "labels"
SETS = [
    "binance-vision-metrics-btc-2023-11-12",
    "coinalyze-binance-perp-1h",
    "coinalyze-binance-perp-5m",
]


@pytest.mark.parametrize("name", SETS)
def test_defaults_meet_every_target_on_each_labelled_real_data_set(
    name: str, labelled_stores: dict[str, Path]
) -> None:
    """The issue's acceptance, at the settings a user gets with no flags: recall >= 90 %,
    >= 90 % of squeezes upgraded, no long liquidation read as covering, <= 1 covering event
    per symbol-day. `--check` exits 1 on a miss."""
    db = str(labelled_stores[name])
    res = run_cli("--db", db, "evaluate", "--labels", str(LABELS / f"{name}.csv"), "--format",
                  "json", "--check")  # fmt: skip
    assert res.code == 0, res.out[-2000:] + res.err
    summary = json.loads(res.out)["settings"][0]["summary"]
    assert all(summary["targets"].values()), summary
    assert summary["recall_pct"] >= 90 and summary["long_liquidations_read_as_covering"] == 0


def test_the_previous_defaults_miss_what_the_new_ones_catch(
    labelled_stores: dict[str, Path],
) -> None:
    name = "binance-vision-metrics-btc-2023-11-12"
    res = run_cli("--db", str(labelled_stores[name]), "evaluate", "--labels",
                  str(LABELS / f"{name}.csv"), "--baseline", "--format", "json")  # fmt: skip
    assert res.code == 0, res.err
    by_name = {s["name"]: s["summary"] for s in json.loads(res.out)["settings"]}
    before, after = by_name["oiradar 0.1 defaults"], by_name["these settings"]
    assert before["recall_pct"] < 70 and after["recall_pct"] >= 90


def test_labels_files_are_valid_and_say_where_they_come_from() -> None:
    for name in SETS:
        rows = read_labels(LABELS / f"{name}.csv")
        assert rows and all(r.note for r in rows), name
        assert {r.label for r in rows} >= {Label.COVERING, Label.LONG_LIQUIDATION}
    readme = (LABELS / "README.md").read_text()
    assert all(name in readme for name in SETS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("venue,symbol,start\n", "missing column(s) end, label"),
        ("venue,symbol,start,end,label,color\n", "unknown column(s) color"),
        ("venue,symbol,start,end,label\nbinance,BTCUSDT,2024-01-01,2024-01-02,squeezy\n",
         ":2: unknown label 'squeezy'"),
        ("venue,symbol,start,end,label\nbinance,BTCUSDT,soon,2024-01-02,covering\n",
         ":2: invalid time 'soon'"),
        ("venue,symbol,start,end,label\nbinance,BTCUSDT,2024-01-02,2024-01-01,covering\n",
         ":2: end must be after start"),
        ("venue,symbol,start,end,label\nbinance,BTCUSDT,2024-01-01\n", ":2: expected 5 fields"),
        ("# only a comment\n", "empty labels file"),
        ("venue,symbol,start,end,label\n", "no labels below the header"),
    ],
)  # fmt: skip
def test_a_bad_labels_file_is_one_line_naming_file_and_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(text)
    res = run_cli("--db", str(tmp_path / "none.sqlite"), "evaluate", "--labels", str(path))
    assert res.code not in {0, 70}
    assert message in res.err and res.err.count("\n") == 1 and "Traceback" not in res.err


def test_labels_with_no_stored_data_say_what_to_import(tmp_path: Path, derived: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("venue,symbol,start,end,label\nbinance,BTCUSDT,2024-01-01,2024-01-02,none\n")
    db = tmp_path / "s.sqlite"
    assert run_cli("--db", str(db), "import", str(derived / "coinalyze-binance-perp-5m")).code == 0
    res = run_cli("--db", str(db), "evaluate", "--labels", str(path))
    assert res.code == 2 and "import that data set first" in res.err


def test_scoring_by_hand() -> None:
    """Caught no later than one bar after the label's end; a long liquidation is misread only
    by a covering bar closing inside it."""
    close = [100.0] * 300 + [100.5, 101.2, 101.6] + [101.6] * 30
    oi = [1000.0] * 300 + [990.0, 980.0, 965.0] + [965.0] * 30
    tl = timeline(series(close, oi), EngineParams(windows_ms=(15 * MINUTE_MS,)))
    at = lambda i: T0 + i * FIVE_MIN  # noqa: E731
    labels = [
        LabelRow("x", "X", at(300), at(302), Label.COVERING),  # the move: caught at 301's close
        LabelRow("x", "X", at(290), at(299), Label.COVERING),  # before it: missed
        LabelRow("x", "X", at(300), at(301), Label.SQUEEZE),  # by end + one bar: caught
        LabelRow("x", "X", at(301), at(303), Label.LONG_LIQUIDATION),  # misread
        LabelRow("x", "X", at(320), at(330), Label.NONE),  # quiet: not flagged
    ]
    out = score(labels, tl)
    assert [o.flagged for o in out] == [True, False, True, True, False]
    assert out[0].signal_ms == at(302) and out[0].latency_min == 10.0
    s = summarize(out, [])
    assert s["recall_pct"] == pytest.approx(66.7) and s["squeeze_recall_pct"] == 0.0
    assert s["long_liquidations_read_as_covering"] == 1
    assert s["targets"] == {
        "recall": False,
        "squeezes_upgraded": False,
        "long_liquidations": False,
        "events_per_symbol_day": True,
    }


def test_sweep_warns_and_ranks(labelled_stores: dict[str, Path]) -> None:
    name = "coinalyze-binance-perp-5m"
    grid = "windows=15m;15m,30m,1h oi=1.2,1.5"
    res = run_cli("--db", str(labelled_stores[name]), "evaluate", "--labels",
                  str(LABELS / f"{name}.csv"), "--sweep", grid)  # fmt: skip
    assert res.code == 0, res.err
    assert "4 settings were tried on the same 12 labels" in " ".join(res.err.split())
    first = res.out.index("windows=15m,30m,1h")
    assert first < res.out.index("windows=15m oi")  # the multi-horizon settings rank first
    bad = run_cli("--db", str(labelled_stores[name]), "evaluate", "--labels",
                  str(LABELS / f"{name}.csv"), "--sweep", "bands=1")  # fmt: skip
    assert bad.code == 2 and "--sweep expects KEY=VALUES" in bad.err


def test_the_issue_moves_are_caught_at_defaults() -> None:
    """The three moves of the issue's BTC week, as shapes: OI -3.4 % / price +1.2 % over 50
    minutes with no 15m window crossing both bands; OI -1.5 % / +1.3 % in 20 minutes; OI
    -1.2 % / +1.5 % over an hour. Each is one covering event at defaults."""

    def move(minutes: int, oi_total: float, px_total: float) -> tuple[list[float], list[float]]:
        n = minutes // 5
        close, oi = [40_000.0] * 300, [80_000.0] * 300
        for _ in range(n):
            close.append(close[-1] * (1 + px_total / 100) ** (1 / n))
            oi.append(oi[-1] * (1 + oi_total / 100) ** (1 / n))
        return close + [close[-1]] * 30, oi + [oi[-1]] * 30

    for minutes, d_oi, d_px in ((50, -3.4, 1.2), (20, -1.5, 1.3), (60, -1.2, 1.5)):
        close, oi = move(minutes, d_oi, d_px)
        evs = [e for e in _events(close, oi) if e.start_ms >= T0 + 295 * FIVE_MIN]
        assert len(evs) == 1, (minutes, d_oi, d_px, evs)
        assert evs[0].signal_ms <= T0 + (300 + minutes // 5 + 1) * FIVE_MIN  # by end + a bar


def _events(close: list[float], oi: list[float]) -> list:  # type: ignore[type-arg]
    from oiradar.signals.engine import events

    p = EngineParams()
    return events(timeline(series(close, oi), p), p)


def test_parse_time_of_labels_is_utc() -> None:
    assert parse_time("2023-12-05T16:05:00Z") == parse_time("2023-12-05 16:05")
