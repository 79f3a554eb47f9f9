"""Binance public-archive files in their exact official layout: klines, metrics, fundingRate."""

from __future__ import annotations

import random
import zipfile
from pathlib import Path

import pytest

from oiradar.kinds import Kind
from oiradar.services.importer import import_paths
from oiradar.store import Store
from oiradar.units import parse_time

DAY = parse_time("2024-03-01")
KLINE_HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
    "taker_buy_volume,taker_buy_quote_volume,ignore"
)
METRICS_HEADER = (
    "create_time,symbol,sum_open_interest,sum_open_interest_value,"
    "count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,"
    "count_long_short_ratio,sum_taker_long_short_vol_ratio"
)


def kline_rows(n: int = 288, start: int = DAY, step: int = 300_000) -> list[str]:
    rows = []
    for i in range(n):
        t = start + i * step
        o = 60000 + i
        rows.append(
            f"{t},{o}.0,{o + 5}.5,{o - 5}.5,{o + 1}.0,{100 + i}.5,{t + step - 1},"
            f"{(100 + i) * o}.0,{1000 + i},{50 + i}.25,{(50 + i) * o}.0,0"
        )
    return rows


def metrics_rows(day: str = "2024-03-01", n: int = 288) -> list[str]:
    base = parse_time(day)
    rows = []
    for i in range(1, n + 1):  # end-of-period labels: 00:05 ... 24:00
        t = base + i * 300_000
        stamp = _stamp(t)
        rows.append(f"{stamp},BTCUSDT,{80000 + i}.5,{(80000 + i) * 60000}.0,1.1,1.2,1.3,1.4")
    return rows


def _stamp(ts_ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def write(path: Path, lines: list[str], as_zip: bool = False) -> Path:
    text = "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    if as_zip:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(path.with_suffix(".csv").name, text)
    else:
        path.write_text(text)
    return path


def count(store: Store, kind: Kind) -> int:
    return sum(1 for _ in store.rows(kind))


@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("as_zip", [True, False])
def test_klines_with_and_without_header_csv_and_zip(
    tmp_path: Path, store: Store, header: bool, as_zip: bool
) -> None:
    lines = ([KLINE_HEADER] if header else []) + kline_rows()
    ext = "zip" if as_zip else "csv"
    f = write(
        tmp_path / "klines" / "BTCUSDT" / "5m" / f"BTCUSDT-5m-2024-03-01.{ext}", lines, as_zip
    )
    report = import_paths(store, [f])
    assert report.ok and report.read == {("candles", "binance", "BTCUSDT"): 288}
    rows = list(store.rows(Kind.CANDLES))
    assert len(rows) == 288
    first = rows[0]
    # ts_ms venue symbol interval open high low close volume_base volume_quote taker trades
    assert first[:4] == (DAY, "binance", "BTCUSDT", "5m")
    assert first[4:9] == (60000.0, 60005.5, 59995.5, 60001.0, 100.5)
    assert first[10:] == (50.25, 1000)


def test_microsecond_kline_timestamps_are_normalized(tmp_path: Path, store: Store) -> None:
    rows = [
        r.replace(str(DAY + i * 300_000), str((DAY + i * 300_000) * 1000), 1)
        for i, r in enumerate(kline_rows(12))
    ]
    f = write(tmp_path / "BTCUSDT-5m-2024-03-01.csv", rows)
    import_paths(store, [f])
    assert [r[0] for r in store.rows(Kind.CANDLES)][:2] == [DAY, DAY + 300_000]


def test_metrics_unsorted_and_duplicated_rows(tmp_path: Path, store: Store) -> None:
    rows = metrics_rows()
    shuffled = rows + rows[10:20]  # duplicates
    random.Random(3).shuffle(shuffled)
    f = write(tmp_path / "BTCUSDT-metrics-2024-03-01.zip", [METRICS_HEADER, *shuffled], as_zip=True)
    report = import_paths(store, [f])
    assert report.ok
    assert report.read[("open_interest", "binance", "BTCUSDT")] == 288
    assert any("10 duplicated" in n for n in report.notes)
    got = list(store.rows(Kind.OPEN_INTEREST))
    ts = [r[0] for r in got]
    assert ts == sorted(ts) and len(set(ts)) == 288
    # Labels before 2026-06-25 are end-of-period: the first snapshot is at 00:05 UTC.
    assert got[0][0] == DAY + 300_000
    assert got[0][3] == 80001.5 and got[0][5] == 80001 * 60000.0


def test_metrics_label_switch_2026_06_25(tmp_path: Path, store: Store) -> None:
    """From 2026-06-25 labels are start-of-period (00:00 .. 23:55): stored +5 min."""
    base = parse_time("2026-06-25")
    rows = [
        f"{_stamp(base + i * 300_000)},BTCUSDT,{100 + i}.0,{(100 + i) * 9}.0,1,1,1,1"
        for i in range(288)
    ]
    f = write(tmp_path / "BTCUSDT-metrics-2026-06-25.csv", [METRICS_HEADER, *rows])
    import_paths(store, [f])
    got = list(store.rows(Kind.OPEN_INTEREST))
    assert got[0][0] == base + 300_000 and got[-1][0] == base + 288 * 300_000


def test_metrics_zero_oi_rows_are_gaps_not_values(tmp_path: Path, store: Store) -> None:
    rows = metrics_rows(n=12)
    rows[5] = rows[5].replace(",80006.5,", ",0,")
    f = write(tmp_path / "BTCUSDT-metrics-2024-03-01.csv", [METRICS_HEADER, *rows])
    report = import_paths(store, [f])
    assert count(store, Kind.OPEN_INTEREST) == 11
    assert any("zero OI" in n for n in report.notes)


def test_funding_rate_monthly_file(tmp_path: Path, store: Store) -> None:
    lines = ["calc_time,funding_interval_hours,last_funding_rate"] + [
        f"{DAY + i * 4 * 3_600_000},4,{-0.0001 * (i % 3)}" for i in range(180)
    ]
    f = write(tmp_path / "BTCUSDT-fundingRate-2024-03.zip", lines, as_zip=True)
    report = import_paths(store, [f])
    assert report.read == {("funding", "binance", "BTCUSDT"): 180}
    first, second = list(store.rows(Kind.FUNDING))[:2]
    assert first == (DAY, "binance", "BTCUSDT", 0.0, 4.0)
    assert second[3] == pytest.approx(-0.0001)


def test_reimport_changes_nothing(tmp_path: Path, store: Store) -> None:
    f = write(tmp_path / "BTCUSDT-5m-2024-03-01.csv", kline_rows())
    first = import_paths(store, [f])
    again = import_paths(store, [f])
    assert sum(first.changed.values()) == 288
    assert sum(again.changed.values()) == 0
    assert count(store, Kind.CANDLES) == 288


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda rows: rows.__setitem__(41, rows[41].replace("60041.0,", "sixty,", 1)),
            ":43: column open",
        ),
        (lambda rows: rows.__setitem__(9, rows[9] + ",extra"), ":11: expected 12 fields, found 13"),
        (
            lambda rows: rows.__setitem__(99, rows[99].replace(",60104.5,", ",1.0,", 1)),
            ":101: high below low",
        ),
        (
            lambda rows: rows.__setitem__(5, "1709251500001" + rows[5][13:]),
            ":7: open_time not aligned",
        ),
    ],
)
def test_malformed_kline_file_is_rejected_whole(
    tmp_path: Path, store: Store, mutate: object, expected: str
) -> None:
    good = write(tmp_path / "ok" / "ETHUSDT-5m-2024-03-01.csv", kline_rows())
    rows = kline_rows()
    mutate(rows)  # type: ignore[operator]
    bad = write(tmp_path / "bad" / "BTCUSDT-5m-2024-03-01.csv", [KLINE_HEADER, *rows])
    report = import_paths(store, [tmp_path])
    assert len(report.rejected) == 1
    assert str(bad) in report.rejected[0] and expected in report.rejected[0]
    # Nothing of the bad file is stored; the good file still went in.
    symbols = {r[2] for r in store.rows(Kind.CANDLES)}
    assert symbols == {"ETHUSDT"}
    assert good.exists()


def test_metrics_symbol_must_match_file_name(tmp_path: Path, store: Store) -> None:
    rows = metrics_rows(n=5)
    rows[2] = rows[2].replace("BTCUSDT", "ETHUSDT")
    f = write(tmp_path / "BTCUSDT-metrics-2024-03-01.csv", [METRICS_HEADER, *rows])
    report = import_paths(store, [f])
    assert report.rejected and ":4: column symbol" in report.rejected[0]
    assert count(store, Kind.OPEN_INTEREST) == 0


def test_corrupt_zip_is_rejected(tmp_path: Path, store: Store) -> None:
    f = tmp_path / "BTCUSDT-5m-2024-03-01.zip"
    f.write_bytes(b"PK\x03\x04 definitely not a zip")
    report = import_paths(store, [f])
    assert report.rejected == [f"{f}: not a valid zip file"]


def test_mark_price_klines_are_not_mistaken_for_trade_klines(tmp_path: Path, store: Store) -> None:
    write(
        tmp_path / "markPriceKlines" / "BTCUSDT" / "5m" / "BTCUSDT-5m-2024-03-01.csv", kline_rows()
    )
    report = import_paths(store, [tmp_path])
    assert report.files == 0 and count(store, Kind.CANDLES) == 0


def test_interchange_rows_must_sit_on_their_bar(tmp_path: Path, store: Store) -> None:
    f = tmp_path / "candles.csv"
    f.write_text(
        "ts_ms,venue,symbol,interval,open,high,low,close,volume_base\n"
        f"{DAY},binance,BTCUSDT,1h,1,2,0.5,1.5,10\n"
        f"{DAY + 60_000},binance,BTCUSDT,1h,1,2,0.5,1.5,10\n"
    )
    report = import_paths(store, [f])
    assert report.rejected == [
        f"{f}:3: ts_ms is not a bar open (not aligned to the row's interval)"
    ]
    assert count(store, Kind.CANDLES) == 0


# -- positioning from metrics, premium-index klines ----------------------------------------


def test_metrics_ratios_become_positioning_at_the_oi_rows_times(
    tmp_path: Path, store: Store
) -> None:
    rows = metrics_rows(n=12)
    rows[3] = rows[3].replace(",80004.5,", ",0.0,").replace(",1.1,1.2,1.3,1.4", ",,,,0.75")
    rows[7] = rows[7].replace(",1.2,", ",,")  # one ratio missing on a row with OI
    rows[9] = rows[9].replace(",1.1,1.2,1.3,1.4", ",,,,")  # no ratio at all: no sample
    f = write(tmp_path / "BTCUSDT-metrics-2024-03-01.csv", [METRICS_HEADER, *rows])
    report = import_paths(store, [f])
    assert report.ok and report.read[("positioning", "binance", "BTCUSDT")] == 11
    assert report.read[("open_interest", "binance", "BTCUSDT")] == 11  # the zero row dropped
    got = {r[0]: r[3:] for r in store.rows(Kind.POSITIONING)}
    oi_times = {r[0] for r in store.rows(Kind.OPEN_INTEREST)}
    assert set(got) == (oi_times | {DAY + 4 * 300_000}) - {DAY + 10 * 300_000}
    # count_toptrader -> top accounts, sum_toptrader -> top positions, count_long_short ->
    # all accounts, sum_taker -> taker buy/sell
    assert got[DAY + 300_000] == (1.1, 1.2, 1.3, 1.4)
    assert got[DAY + 4 * 300_000] == (None, None, None, 0.75)  # the zero-OI row's taker ratio
    assert got[DAY + 8 * 300_000] == (1.1, None, 1.3, 1.4)


def test_metrics_after_the_label_switch_shift_positioning_too(tmp_path: Path, store: Store) -> None:
    base = parse_time("2026-06-25")
    rows = [f"{_stamp(base + i * 300_000)},BTCUSDT,{100 + i}.0,900.0,1,2,3,4" for i in range(3)]
    f = write(tmp_path / "BTCUSDT-metrics-2026-06-25.csv", [METRICS_HEADER, *rows])
    import_paths(store, [f])
    oi = [r[0] for r in store.rows(Kind.OPEN_INTEREST)]
    assert (
        [r[0] for r in store.rows(Kind.POSITIONING)]
        == oi
        == [base + 300_000 * i for i in (1, 2, 3)]
    )


def test_negative_ratio_rejects_the_metrics_file(tmp_path: Path, store: Store) -> None:
    rows = metrics_rows(n=5)
    rows[1] = rows[1].replace(",1.3,", ",-1.3,")
    f = write(tmp_path / "BTCUSDT-metrics-2024-03-01.csv", [METRICS_HEADER, *rows])
    report = import_paths(store, [f])
    assert report.rejected == [f"{f}:3: negative long/short or taker ratio"]
    assert count(store, Kind.POSITIONING) == count(store, Kind.OPEN_INTEREST) == 0


def premium_rows(n: int = 288, step: int = 300_000) -> list[str]:
    """The archive's premiumIndexKlines rows: klines columns, premium as OHLC, volumes 0."""
    rows = []
    for i in range(n):
        t, p = DAY + i * step, (i - 100) / 1e6
        rows.append(
            f"{t},{p:.8f},{p + 2e-5:.8f},{p - 3e-5:.8f},{p + 1e-6:.8f},0,{t + step - 1},0,12,0,0,0"
        )
    return rows


@pytest.mark.parametrize("as_zip", [True, False])
def test_premium_index_klines_under_their_folder(
    tmp_path: Path, store: Store, as_zip: bool
) -> None:
    ext = "zip" if as_zip else "csv"
    folder = tmp_path / "data" / "futures" / "um" / "daily" / "premiumIndexKlines" / "BTCUSDT"
    f = write(
        folder / "5m" / f"BTCUSDT-5m-2024-03-01.{ext}", [KLINE_HEADER, *premium_rows()], as_zip
    )
    report = import_paths(store, [tmp_path])
    assert report.ok and report.read == {("premium_index", "binance", "BTCUSDT"): 288}
    rows = list(store.rows(Kind.PREMIUM_INDEX))
    assert rows[0] == (DAY, "binance", "BTCUSDT", "5m", -1e-4, -0.00008, -0.00013, -0.000099)
    assert count(store, Kind.CANDLES) == 0
    assert import_paths(store, [f]).changed == {("premium_index", "binance", "BTCUSDT"): 0}


def test_premium_file_with_high_below_low_is_rejected(tmp_path: Path, store: Store) -> None:
    rows = premium_rows(5)
    rows[2] = "1709252400000,0.0001,0.00005,0.0002,0.0001,0,1709252699999,0,12,0,0,0"
    f = write(tmp_path / "premiumIndexKlines" / "BTCUSDT-5m-2024-03-01.csv", rows)
    assert import_paths(store, [f]).rejected == [f"{f}:3: high below low"]


def test_real_metrics_give_7488_positioning_rows(real_metrics: Path, store: Store) -> None:
    """The 26 real archive days: 288 samples each, the 10 zero-OI rows included (taker ratio
    only), at the same times as the OI rows."""
    report = import_paths(store, [real_metrics])
    assert report.ok, report.rejected
    assert report.read[("positioning", "binance", "BTCUSDT")] == 7_488 == 26 * 288
    assert report.read[("open_interest", "binance", "BTCUSDT")] == 7_478
    rows = list(store.rows(Kind.POSITIONING))
    taker_only = [r for r in rows if r[3:6] == (None, None, None)]
    assert len(taker_only) == 10 and all(r[6] is not None for r in taker_only)
    oi_times = {r[0] for r in store.rows(Kind.OPEN_INTEREST)}
    assert {r[0] for r in rows} - oi_times == {r[0] for r in taker_only}
    first = rows[0]  # 2023-11-15 00:00:00,BTCUSDT,78888.696,...
    assert first[0] == parse_time("2023-11-15T00:00:00Z")
    # Long/short ratios stay near 1 on BTC; the 5-minute taker ratio swings far more.
    assert all(0.5 < v < 1.5 for r in rows for v in r[3:6] if v is not None)
    assert 0.06 < min(r[6] for r in rows) < 0.07 and 11.7 < max(r[6] for r in rows) < 11.8
