"""Output edges: rich tables, JSON arrays and CSV from lists of flat dicts."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from oiradar.signals.regimes import TERMINAL_STYLE


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


REGIME_STYLE = {r.name: style for r, style in TERMINAL_STYLE.items()}  # cells hold names


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """'1 event', '2 events' ('1 entry', '2 entries' with `nouns`): counts read as English."""
    return f"{n} {noun}" if n == 1 else f"{n} {nouns or noun + 's'}"


def _compact(x: float) -> str:
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.2f}{suffix}"
    return f"{x:.0f}"


def _cell(key: str, value: Any) -> str:
    """Table cell text: units get their own compact form (JSON/CSV keep raw numbers)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float | int) and (key.endswith("_usd") or abs(value) >= 1e7):
        return _compact(float(value))
    if isinstance(value, float) and key.endswith("_pct"):
        return f"{value:+.2f}"
    if isinstance(value, float) and key.startswith("funding_rate"):
        return f"{value * 100:+.4f}%"
    if isinstance(value, str) and len(value) == 20 and value.endswith("Z") and "T" in value:
        return value[:16].replace("T", " ")
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) >= 1000 else f"{value:.4g}"
    return str(value)


def progress_bar(console: Console, label: str, show: bool) -> Progress:
    """A transient progress bar on stderr; silent when `show` is False (JSON, pipes)."""
    return Progress(
        TextColumn(label),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        console=console,
        disable=not show,
        transient=True,
    )


def emit(
    rows: Sequence[dict[str, Any]],
    fmt: Format,
    *,
    columns: Sequence[tuple[str, str]] | None = None,
    title: str | None = None,
    console: Console | None = None,
) -> None:
    """Print rows; `columns` = (key, header) pairs chosen for the table view."""
    if fmt is Format.JSON:
        sys.stdout.write(json.dumps(list(rows), indent=2) + "\n")
        return
    if fmt is Format.CSV:
        # Every key of every row, in first-seen order: rows may differ (scan's cross-venue
        # rows add `driver` and `venues`), and a row's missing keys are empty cells.
        keys = list(dict.fromkeys(k for row in rows for k in row)) or [k for k, _ in columns or ()]
        writer = csv.DictWriter(sys.stdout, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
        return
    # Piped output (files, README captures) gets a wide fixed width instead of 80 columns.
    con = console or Console(width=None if sys.stdout.isatty() else 160)
    cols = columns or [(k, k) for k in (rows[0].keys() if rows else ())]
    table = Table(title=title, header_style="bold")
    for key, header in cols:
        justify = (
            "left"
            if key
            in (
                "regime",
                "start",
                "end",
                "ts",
                "symbol",
                "venue",
                "session",
                "tier",
                "kind",
                "interval",
                "first",
                "last",
            )
            else "right"
        )
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        cells = []
        for key, _ in cols:
            text = _cell(key, row.get(key))
            style = REGIME_STYLE.get(text) if key == "regime" else None
            cells.append(f"[{style}]{text}[/]" if style else text)
        table.add_row(*cells)
    con.print(table)
