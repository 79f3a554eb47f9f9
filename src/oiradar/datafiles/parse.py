"""Parse one history file into validated frames; any defect raises DataError with file:line.

The file's kind (by `detect`) picks the reader: `archive_csv` for Binance's public archive,
`interchange` for our layout; `columns` holds what both share."""

from __future__ import annotations

from pathlib import Path

from oiradar.datafiles.archive_csv import (
    parse_funding,
    parse_klines,
    parse_liquidations,
    parse_metrics,
    parse_premium,
)
from oiradar.datafiles.columns import Parsed, read_text
from oiradar.datafiles.detect import Detected, FileKind, detect
from oiradar.datafiles.interchange import parse_interchange
from oiradar.errors import DataError

__all__ = ["Parsed", "parse_file"]

ARCHIVE_READERS = {
    FileKind.ARCHIVE_KLINES: parse_klines,
    FileKind.ARCHIVE_METRICS: parse_metrics,
    FileKind.ARCHIVE_PREMIUM: parse_premium,
    FileKind.ARCHIVE_FUNDING: parse_funding,
    FileKind.ARCHIVE_LIQUIDATIONS: parse_liquidations,
}


def parse_file(path: Path, detected: Detected | None = None) -> Parsed:
    """Read and validate a whole file; nothing is returned unless all of it is sound."""
    det = detected or detect(path)
    if det is None:
        raise DataError(f"{path}: not a file oiradar can import (see docs/interchange.md)")
    try:
        if det.kind is FileKind.INTERCHANGE:
            return parse_interchange(path, det)
        return ARCHIVE_READERS[det.kind](path, det, read_text(path, det.fmt))
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
