"""`oiradar import`: find history files, parse each whole, store each in one transaction."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from oiradar.datafiles import parse_file
from oiradar.datafiles.archive import verify_beside
from oiradar.datafiles.detect import Detected, FileKind, detect
from oiradar.errors import DataError, UserError
from oiradar.kinds import LAYOUTS, Kind
from oiradar.store import Store, open_store


@dataclass(slots=True)
class ImportReport:
    """Rows read and rows inserted-or-changed, per (kind, venue, symbol)."""

    read: dict[tuple[str, str, str], int] = field(default_factory=dict)
    changed: dict[tuple[str, str, str], int] = field(default_factory=dict)
    files: int = 0
    rejected: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected


def discover(paths: Iterable[Path]) -> list[tuple[Path, Detected]]:
    """Files to import: named files must be importable; folders are searched recursively."""
    found: list[tuple[Path, Detected]] = []
    for path in paths:
        if not path.exists():
            raise UserError(f"{path}: no such file or directory")
        if path.is_dir():
            for p in sorted(path.rglob("*")):
                det = detect(p) if p.is_file() else None
                if det is not None:
                    found.append((p, det))
        else:
            det = detect(path)
            if det is None:
                raise UserError(
                    f"{path}: not a file oiradar can import (Binance archive klines/metrics/"
                    "fundingRate/premiumIndexKlines/liquidationSnapshot CSV or zip, or "
                    "candles/open_interest/"
                    "funding/liquidations/liquidation_orders/positioning/premium_index "
                    ".csv/.parquet)"
                )
            found.append((path, det))
    return found


def _rows(frame: pl.DataFrame, kind: Kind) -> list[tuple[object, ...]]:
    return frame.select(LAYOUTS[kind].names).rows()


def import_paths(
    store: Store, paths: Iterable[Path], progress: Callable[[Path], None] | None = None
) -> ImportReport:
    """Import every file; a malformed file (or an archive file whose `.CHECKSUM` beside it
    does not match) is rejected whole and the others still go in."""
    report = ImportReport()
    for path, det in discover(paths):
        if progress:
            progress(path)
        try:
            if det.kind is not FileKind.INTERCHANGE:
                verify_beside(path)
            parsed = parse_file(path, det)
        except DataError as exc:
            report.rejected.append(str(exc))
            continue
        batches = []
        for kind, frame in parsed.frames.items():
            for (venue, symbol), part in _groups(frame):
                key = (kind.value, venue, symbol)
                report.read[key] = report.read.get(key, 0) + part.height
                batches.append((key, kind, part))
        changed = _write(store, batches, parsed.coverage)
        for key, n in changed.items():
            report.changed[key] = report.changed.get(key, 0) + n
        report.notes.extend(f"{path}: {note}" for note in parsed.notes)
        report.files += 1
    return report


def _groups(frame: pl.DataFrame) -> Iterator[tuple[tuple[str, str], pl.DataFrame]]:
    for keys, part in frame.group_by(["venue", "symbol"], maintain_order=True):
        venue, symbol = keys
        yield (str(venue), str(symbol)), part


def _write(
    store: Store,
    batches: list[tuple[tuple[str, str, str], Kind, pl.DataFrame]],
    coverage: list[tuple[str, str, int, int]],
) -> dict[tuple[str, str, str], int]:
    """One transaction per file: all of it or nothing of it."""
    rows = [(key, kind, _rows(part, kind)) for key, kind, part in batches]
    return store.write_grouped(rows, coverage=coverage)


@contextmanager
def history_store(path: Path) -> Iterator[Store]:
    """Recorded history to read (`oiradar sim --data`): a store file as is, read-only; files
    or folders `import` reads, imported into a temporary store removed afterwards."""
    if path.is_file() and path.suffix in (".sqlite", ".db"):
        with open_store(path, readonly=True) as store:
            yield store
        return
    with (
        tempfile.TemporaryDirectory(prefix="oiradar-sim-") as tmp,
        open_store(Path(tmp) / "history.sqlite") as store,
    ):
        report = import_paths(store, [path])
        if not report.ok:
            raise UserError(f"cannot load {path}: {report.rejected[0]}")
        yield store
