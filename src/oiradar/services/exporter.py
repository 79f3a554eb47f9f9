"""`oiradar export`: the store as interchange files, the exact layout `import` reads."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from oiradar.errors import UserError
from oiradar.kinds import LAYOUTS, Kind
from oiradar.store import Store

_PL = {"int": pl.Int64, "float": pl.Float64, "str": pl.String}


def export_store(
    store: Store,
    out: Path,
    file_format: str,
    *,
    venue: str | None = None,
    symbol: str | None = None,
) -> list[tuple[Path, int]]:
    """Write one file per non-empty kind; returns (path, rows) per file written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {out}: {exc.strerror}") from None
    written = []
    for kind in Kind:
        layout = LAYOUTS[kind]
        schema = {c.name: _PL[c.dtype] for c in layout.columns}
        frame = pl.DataFrame(list(store.rows(kind, venue, symbol)), schema=schema, orient="row")
        if frame.is_empty():
            continue
        path = out / f"{kind.value}.{file_format}"
        if file_format == "csv":
            frame.write_csv(path)
        else:
            frame.write_parquet(path)
        written.append((path, frame.height))
    return written
