"""`oiradar evaluate`: how the engine reads labelled episodes of stored history.

The labels file names (venue, symbol, start, end, label) rows; each labelled series is read
from the store at the finest stored bar size that covers its labels, over its labels' span
plus a day either side (or `--from`/`--to`), with the warm-up history baselines need, and
scored by `research.evaluation`. Several settings (a sweep, the previous defaults, the
evidence terms one by one) run on series loaded once.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from oiradar.errors import DataError, NoDataError, UserError
from oiradar.research.evaluation import (
    Label,
    LabelRow,
    Outcome,
    SeriesRead,
    outcome_row,
    score,
    span_read,
    summarize,
)
from oiradar.services.analyze import WARMUP_DAYS_MS
from oiradar.signals.engine import events, grid_timeline
from oiradar.signals.params import EngineParams, Evidence, parse_evidence
from oiradar.signals.windows import Grid, build_grid
from oiradar.store import Store
from oiradar.units import (
    DAY_MS,
    MINUTE_MS,
    canonical_symbol,
    interval_ms,
    interval_name,
    parse_time,
)

REQUIRED = ("venue", "symbol", "start", "end", "label")
OPTIONAL = ("note",)
MARGIN_MS = DAY_MS  # read this much data either side of a series' labels
# oiradar 0.1's defaults: one 15m window, one band at every horizon, the squeeze read from
# liquidations alone with its first floor and dominance. The "before" of docs/concepts.md.
PREVIOUS_DEFAULTS = EngineParams(
    windows_ms=(15 * MINUTE_MS,),
    oi_taper=1.0,
    price_taper=1.0,
    evidence=(Evidence.LIQUIDATIONS,),
    squeeze_min_oi_share_pct=0.02,
    squeeze_short_long_ratio=2.0,
)


def read_labels(path: Path) -> list[LabelRow]:
    """Parse a labels CSV; any defect is a DataError naming file and line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UserError(f"cannot read labels {path}: {exc.strerror or exc}") from None
    lines = [(n, ln) for n, ln in enumerate(text.splitlines(), 1) if not ln.startswith("#")]
    rows = list(csv.reader(ln for _, ln in lines))
    if not rows or not any(rows[0]):
        raise DataError(f"{path}: empty labels file (expected a header: {', '.join(REQUIRED)})")
    header = [h.strip().lower() for h in rows[0]]
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in REQUIRED + OPTIONAL]
    where = f"{path}:{lines[0][0]}"
    if missing:
        raise DataError(f"{where}: missing column(s) {', '.join(missing)}")
    if unknown:
        raise DataError(f"{where}: unknown column(s) {', '.join(unknown)}")
    if len(set(header)) != len(header):
        raise DataError(f"{where}: a column appears twice")
    out = []
    for (number, _), row in zip(lines[1:], rows[1:], strict=True):
        if not any(cell.strip() for cell in row):
            continue
        out.append(_label(path, number, dict(zip(header, row, strict=False)), len(row), header))
    if not out:
        raise DataError(f"{path}: no labels below the header")
    return out


def _label(
    path: Path, number: int, cells: dict[str, str], width: int, header: list[str]
) -> LabelRow:
    where = f"{path}:{number}"
    if width != len(header):
        raise DataError(f"{where}: expected {len(header)} fields, found {width}")
    try:
        kind = Label(cells["label"].strip().lower())
    except ValueError:
        known = ", ".join(k.value for k in Label)
        raise DataError(
            f"{where}: unknown label {cells['label'].strip()!r} (use {known})"
        ) from None
    try:
        start, end = parse_time(cells["start"]), parse_time(cells["end"])
        symbol = canonical_symbol(cells["symbol"])
    except UserError as exc:
        raise DataError(f"{where}: {exc}") from None
    venue = cells["venue"].strip().lower()
    if not venue.isalnum():
        raise DataError(f"{where}: invalid venue {cells['venue']!r}")
    if end <= start:
        raise DataError(f"{where}: end must be after start")
    note = cells.get("note", "").strip()
    return LabelRow(venue, symbol, start, end, kind, note, number)


@dataclass(slots=True)
class Loaded:
    """One labelled series, read once for every setting."""

    venue: str
    symbol: str
    interval: str
    grid: Grid
    labels: list[LabelRow]
    span: tuple[int, int]


@dataclass(slots=True)
class Evaluation:
    """One setting's reading of every labelled series."""

    name: str
    params: EngineParams
    outcomes: list[Outcome] = field(default_factory=list)
    reads: list[SeriesRead] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return summarize(self.outcomes, self.reads)

    def per_series(self) -> list[dict[str, Any]]:
        rows = []
        for r in self.reads:
            mine = [
                o for o in self.outcomes if (o.label.venue, o.label.symbol) == (r.venue, r.symbol)
            ]
            rows.append(
                {
                    "venue": r.venue,
                    "symbol": r.symbol,
                    "interval": r.interval,
                    **summarize(mine, [r]),
                }
            )
        return rows

    def details(self) -> list[dict[str, Any]]:
        return [outcome_row(o) for o in self.outcomes]


def load(
    store: Store,
    labels: Sequence[LabelRow],
    interval: str | None = None,
    start_ms: int | None = None,
    end_ms: int | None = None,
    progress: Callable[[str], None] = lambda s: None,
) -> list[Loaded]:
    """Read each labelled series once (with the warm-up its baselines need)."""
    out = []
    key = lambda lab: (lab.venue, lab.symbol)  # noqa: E731
    for (venue, symbol), group in itertools.groupby(sorted(labels, key=key), key=key):
        mine = sorted(group, key=lambda lab: lab.start_ms)
        first, last = mine[0].start_ms, max(lab.end_ms for lab in mine)
        ivl = interval or _covering_interval(store, venue, symbol, first, last)
        lo = start_ms if start_ms is not None else first - MARGIN_MS
        hi = end_ms if end_ms is not None else last + MARGIN_MS
        series = store.read_series(venue, symbol, ivl, lo - WARMUP_DAYS_MS, hi)
        if len(series.candle_ts) == 0 or len(series.oi_ts) == 0:
            raise NoDataError(f"no {ivl} candles and OI for {symbol} on {venue} around its labels")
        out.append(Loaded(venue, symbol, ivl, build_grid(series), mine, (lo, hi)))
        progress(symbol)
    return out


def _covering_interval(store: Store, venue: str, symbol: str, first: int, last: int) -> str:
    """The finest stored bar size whose candles reach over every label of the series."""
    for ivl in sorted(store.intervals(venue, symbol), key=interval_ms):
        span = store.candle_span(venue, symbol, ivl, first - DAY_MS, last + DAY_MS)
        if span is not None and span[0] <= first and span[1] + interval_ms(ivl) >= last:
            return ivl
    from oiradar.units import iso

    raise NoDataError(
        f"no stored candles of {symbol} on {venue} cover its labels ({iso(first)[:16]} .. "
        f"{iso(last)[:16]}); import that data set first (oiradar import PATH)"
    )


def run(loaded: Sequence[Loaded], name: str, params: EngineParams) -> Evaluation:
    """Read every series with one setting and score its labels."""
    ev = Evaluation(name, params)
    for s in loaded:
        tl = grid_timeline(s.grid, _for_bars(params, s.grid.bar_ms))
        ev.outcomes.extend(score(s.labels, tl))
        signals = [e.signal_ms for e in events(tl, params)]
        count, days = span_read(tl, *s.span, signals)
        ev.reads.append(SeriesRead(s.venue, s.symbol, s.interval, count, days))
    return ev


def _for_bars(params: EngineParams, bar_ms: int) -> EngineParams:
    """One window shorter than the bars reads one bar, as 0.1's default did on hourly data."""
    if len(params.windows_ms) == 1 and params.windows_ms[0] < bar_ms:
        return replace(params, windows_ms=(bar_ms,))
    return params


# Numeric sweep keys and the parameter each sets (squeeze terms included: their defaults were
# chosen by these sweeps too).
_NUMERIC = {
    "oi": "oi_threshold_pct",
    "price": "price_threshold_pct",
    "squeeze_k": "squeeze_k",
    "oi_share": "squeeze_min_oi_share_pct",
    "dominance": "squeeze_short_long_ratio",
    "outrun": "taker_outrun",
    "crowded": "crowded_ratio",
}
SWEEP_KEYS = ("windows", "taper", "evidence", *_NUMERIC)


def parse_sweep(parts: Sequence[str], base: EngineParams) -> list[tuple[str, EngineParams]]:
    """'windows=15m;15m,30m,1h oi=1.2,1.5 taper=1/1,0.67/0.8 evidence=liquidations;none' ->
    every combination, named by what it sets (lists inside a value are split by ';' for
    windows and evidence, '/' inside a taper pair)."""
    axes: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for token in " ".join(parts).split():
        key, sep, values = token.partition("=")
        key = key.lower()
        if not sep or key not in SWEEP_KEYS or not values:
            raise UserError(
                f"--sweep expects KEY=VALUES with KEY in {', '.join(SWEEP_KEYS)}, got {token!r}"
            )
        axes[key] = [
            _sweep_value(key, v)
            for v in values.split(";" if key in ("windows", "evidence") else ",")
        ]
    if not axes:
        raise UserError("--sweep needs at least one KEY=VALUES, e.g. oi=1.2,1.5")
    out = []
    for combo in itertools.product(*axes.values()):
        fields: dict[str, Any] = {}
        for _, f in combo:
            fields.update(f)
        name = " ".join(label for label, _ in combo)
        out.append((name, replace(base, **fields)))
    return out


def _sweep_value(key: str, text: str) -> tuple[str, dict[str, Any]]:
    try:
        if key == "windows":
            ws = tuple(sorted({interval_ms(w) for w in text.split(",") if w.strip()}))
            return f"windows={','.join(interval_name(w) for w in ws)}", {"windows_ms": ws}
        if key == "evidence":
            ev = parse_evidence(text)
            return f"evidence={text}", {"evidence": ev}
        if key == "taper":
            oi, px = (float(x) for x in text.split("/"))
            return f"taper={oi:g}/{px:g}", {"oi_taper": oi, "price_taper": px}
        value = float(text)
    except ValueError:
        raise UserError(f"--sweep {key}={text!r}: not a valid value") from None
    if not value > 0:
        raise UserError(f"--sweep {key}= takes positive numbers")
    return f"{key}={value:g}", {_NUMERIC[key]: value}
