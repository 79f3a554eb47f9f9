"""Recognize a history file by its name (Binance archive) or stem (interchange layout)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from oiradar.kinds import Kind

# BTCUSDT-5m-2024-03-01.zip, BTCUSDT-metrics-2024-03-01.csv, BTCUSDT-fundingRate-2024-03.zip,
# BTCUSDT-liquidationSnapshot-2024-03-01.zip
_ARCHIVE_RE = re.compile(
    r"^(?P<symbol>[A-Z0-9]+)-(?P<what>metrics|fundingRate|liquidationSnapshot|\d+[mhdw])"
    r"-(?P<date>\d{4}-\d{2}(?:-\d{2})?)$"
)
# Other price series share the klines file name; only the folder tells them apart. Premium
# index klines are read (as premium bars); mark and index price klines are not.
PREMIUM_FOLDER = "premiumIndexKlines"
_SKIPPED_KLINES = ("markPriceKlines", "indexPriceKlines")


class FileKind(StrEnum):
    ARCHIVE_KLINES = "binance-klines"
    ARCHIVE_METRICS = "binance-metrics"
    ARCHIVE_FUNDING = "binance-fundingRate"
    ARCHIVE_PREMIUM = "binance-premiumIndexKlines"
    ARCHIVE_LIQUIDATIONS = "binance-liquidationSnapshot"
    INTERCHANGE = "interchange"


@dataclass(frozen=True, slots=True)
class Detected:
    kind: FileKind
    symbol: str | None = None
    interval: str | None = None
    date: str | None = None
    record_kind: Kind | None = None
    fmt: str = "csv"  # csv, zip or parquet


def detect(path: Path) -> Detected | None:
    """What the file at `path` holds, or None when it is not a file oiradar reads."""
    name = path.name
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".zip", ".parquet"):
        return None
    stem = name[: -len(suffix)]
    if suffix in (".csv", ".parquet"):
        try:
            return Detected(FileKind.INTERCHANGE, record_kind=Kind(stem), fmt=suffix[1:])
        except ValueError:
            pass
    if suffix == ".parquet":
        return None
    m = _ARCHIVE_RE.match(stem)
    if m is None:
        return None
    what, fmt = m.group("what"), suffix[1:]
    common = {"symbol": m.group("symbol"), "date": m.group("date"), "fmt": fmt}
    if what == "metrics":
        return Detected(FileKind.ARCHIVE_METRICS, record_kind=Kind.OPEN_INTEREST, **common)
    if what == "fundingRate":
        return Detected(FileKind.ARCHIVE_FUNDING, record_kind=Kind.FUNDING, **common)
    if what == "liquidationSnapshot":
        kind = Kind.LIQUIDATION_ORDERS
        return Detected(FileKind.ARCHIVE_LIQUIDATIONS, record_kind=kind, **common)
    if any(part in _SKIPPED_KLINES for part in path.parts):
        return None
    if PREMIUM_FOLDER in path.parts:
        kind = Kind.PREMIUM_INDEX
        return Detected(FileKind.ARCHIVE_PREMIUM, interval=what, record_kind=kind, **common)
    return Detected(FileKind.ARCHIVE_KLINES, interval=what, record_kind=Kind.CANDLES, **common)
