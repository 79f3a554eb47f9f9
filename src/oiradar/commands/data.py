"""`oiradar import`, `oiradar export`, `oiradar info`: history in and out of the store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from oiradar.commands.app import DbOption, _store, app, err, fail
from oiradar.errors import UserError
from oiradar.render import Format, emit, progress_bar
from oiradar.units import iso


@app.command("import")
def import_(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Files or folders (searched recursively): Binance archive *-metrics-* (OI "
            "and positioning), *-<interval>-* klines (premium index under a "
            "premiumIndexKlines folder), *-fundingRate-* and *-liquidationSnapshot-* (.csv "
            "or .zip), or interchange "
            "files candles/open_interest/funding/liquidations/liquidation_orders/positioning/"
            "premium_index (.csv/.parquet).",
            show_default=False,
        ),
    ],
    db: DbOption = None,
    fmt: Annotated[Format, typer.Option("--format", help="Report format.")] = Format.TABLE,
) -> None:
    """Import history into the store; re-importing the same files changes nothing.

    Each file is read and validated whole, then stored in one transaction: a malformed
    file is rejected with its name and line and nothing of it is stored; the other files
    still go in (exit code 2 says some were rejected).

    Example: oiradar import ../shared/data/real/derived ~/Downloads/BTCUSDT-metrics-2024-03-01.zip
    """
    from oiradar.services.importer import discover, import_paths

    store = _store(db=db)
    with store:
        files = discover(paths)
        if not files:
            raise UserError(f"no importable files under {', '.join(map(str, paths))}")
        show = fmt is Format.TABLE and err.is_terminal
        with progress_bar(err, "importing", show) as bar:
            task = bar.add_task("import", total=len(files))
            report = import_paths(store, paths, progress=lambda _p: bar.advance(task))
    rows = [
        {
            "kind": k,
            "venue": v,
            "symbol": s,
            "rows": n,
            "new_or_changed": report.changed.get((k, v, s), 0),
        }
        for (k, v, s), n in sorted(report.read.items())
    ]
    emit(
        rows,
        fmt,
        columns=[
            ("kind", "kind"),
            ("venue", "venue"),
            ("symbol", "symbol"),
            ("rows", "rows read"),
            ("new_or_changed", "new or changed"),
        ],
        title=f"imported {report.files} file(s) into {store.location}",
    )
    for note in report.notes:
        err.print(f"note: {note}", markup=False, highlight=False)
    for reason in report.rejected:
        fail(f"rejected {reason}")
    if not report.ok:
        raise typer.Exit(2)


@app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write into (created).")],
    db: DbOption = None,
    file_format: Annotated[str, typer.Option("--file-format", help="csv or parquet.")] = "csv",
    venue: Annotated[str | None, typer.Option(help="Only this venue.")] = None,
    symbol: Annotated[str | None, typer.Option(help="Only this symbol.")] = None,
) -> None:
    """Write the store as interchange files (one per record kind) that `import` reads back.

    Example: oiradar export --out backup/ --file-format parquet
    """
    from oiradar.services.exporter import export_store
    from oiradar.units import canonical_symbol

    if file_format not in ("csv", "parquet"):
        raise UserError(f"--file-format must be csv or parquet, not {file_format!r}")
    store = _store(readonly=True, db=db)
    with store:
        written = export_store(
            store,
            out,
            file_format,
            venue=venue,
            symbol=canonical_symbol(symbol) if symbol else None,
        )
    for path, n in written:
        typer.echo(f"{path}\t{n} rows")


@app.command("info")
def info(
    db: DbOption = None,
    fmt: Annotated[Format, typer.Option("--format", help="Output format.")] = Format.TABLE,
) -> None:
    """Show where the store is, its schema version and what it holds: rows and time range per
    series, candles per bar size (analyze and backtest use the finest unless told --interval).

    The path of a server store is its URL without the password.
    --format json prints one object: {"path", "backend", "schema_version", "series": [...]}.
    """
    from oiradar.store.backends import url_scheme
    from oiradar.units import interval_ms

    store = _store(readonly=True, db=db)
    with store:
        bars = sorted(store.candle_intervals(), key=lambda r: (r[0], r[1], interval_ms(r[2])))
        rows = [
            {"kind": "candles", "venue": v, "symbol": s, "interval": i, "rows": n,
             "first": iso(lo), "last": iso(hi)}
            for v, s, i, n, lo, hi in bars
        ] + [
            {"kind": k, "venue": v, "symbol": s, "interval": None, "rows": n,
             "first": iso(lo), "last": iso(hi)}
            for k, v, s, n, lo, hi in store.summary()
            if k != "candles"
        ]  # fmt: skip
        path, version = store.location, store.schema_version
    backend = url_scheme(path) or "sqlite"
    if fmt is Format.JSON:  # one object: where the store is, its schema, then the series
        doc = {"path": str(path), "backend": backend, "schema_version": version, "series": rows}
        typer.echo(json.dumps(doc, indent=2))
        return
    emit(rows, fmt, title=f"{path} ({backend}, schema v{version})")


@app.command("prune")
def prune(
    older_than: Annotated[
        str,
        typer.Option(help="Age past which raw rows become per-bar values (at least 1d)."),
    ] = "30d",
    bar: Annotated[str, typer.Option(help="The bars whose values are kept.")] = "5m",
    db: DbOption = None,
    fmt: Annotated[Format, typer.Option("--format", help="Report format.")] = Format.TABLE,
) -> None:
    """Keep old raw OI snapshots and liquidation orders only as per-bar values.

    Of each OI series older than --older-than, the last snapshot of each bar stays (the one
    the engine reads); of a live feed's liquidations, each bar's orders become one per-bar
    total. What the engine reads per bar is unchanged (docs/store.md, Retention); the store
    stops growing with the raw streams. `oiradar watch --retain 30d` does this hourly.

    Example: oiradar prune --older-than 90d
    """
    from oiradar.services.retention import PruneRequest
    from oiradar.services.retention import prune as run_prune
    from oiradar.units import interval_ms

    req = PruneRequest(interval_ms(older_than), interval_ms(bar))
    with _store(db=db) as store:
        result = run_prune(store, req)
    before = iso(result.cutoff_ms)
    rows = [{"kind": k.value, "before": before, "removed": n} for k, n in result.removed.items()]
    emit(rows, fmt, title=f"pruned to {bar} bars")
