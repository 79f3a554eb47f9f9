"""`oiradar evaluate`: recall, latency, squeeze accuracy and false alarms on labelled episodes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from oiradar.commands.analysis import From, Interval, To
from oiradar.commands.app import DbOption, _store, app, err
from oiradar.commands.engine_options import (
    AdaptiveOption,
    EngineChoice,
    EvidenceOption,
    OiBandOption,
    PriceBandOption,
    ReferenceOption,
    TaperOption,
    WindowOption,
    WindowsOption,
)
from oiradar.errors import UserError
from oiradar.render import Format, emit, progress_bar
from oiradar.signals.params import ablation as evidence_variants
from oiradar.units import interval_ms, iso, parse_time

SERIES_COLUMNS = [
    ("setting", "setting"),
    ("series", "series"),
    ("covering_labels", "cover"),
    ("recall", "caught"),
    ("median_latency_min", "latency min"),
    ("squeezes", "squeezes up"),
    ("squeeze_accuracy_pct", "sq/cov right"),
    ("long_misread", "long liq read as cov"),
    ("none_flagged", "none flagged"),
    ("events_per_symbol_day", "events/day"),
]
DETAIL_COLUMNS = [
    ("symbol", "symbol"),
    ("label", "label"),
    ("start", "start UTC"),
    ("end", "end UTC"),
    ("verdict", "verdict"),
    ("signal_at", "signal UTC"),
    ("latency_min", "min"),
    ("note", "note"),
]
_TARGETS = {
    "recall": "recall >= 90 %",
    "squeezes_upgraded": "squeezes upgraded >= 90 %",
    "long_liquidations": "0 long liquidations read as covering",
    "events_per_symbol_day": "<= 1 covering event per symbol-day",
}


def _frac(part: int, whole: int, pct: float | None) -> str:
    return f"{part}/{whole}" + (f" ({pct:.0f} %)" if pct is not None else "")


def _cells(setting: str, series: str, s: dict[str, Any]) -> dict[str, Any]:
    return {
        "setting": setting,
        "series": series,
        "covering_labels": s["covering_labels"],
        "recall": _frac(s["caught"], s["covering_labels"], s["recall_pct"]),
        "median_latency_min": s["median_latency_min"],
        "squeezes": _frac(s["squeezes_upgraded"], s["squeeze_labels"], s["squeeze_recall_pct"]),
        "squeeze_accuracy_pct": _pct(s["squeeze_accuracy_pct"]),
        "long_misread": f"{s['long_liquidations_read_as_covering']}/{s['long_liquidation_labels']}",
        "none_flagged": f"{s['none_flagged']}/{s['none_labels']}",
        "events_per_symbol_day": s["events_per_symbol_day"],
    }


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f} %"


def _verdicts(summary: dict[str, Any]) -> str:
    return " · ".join(
        f"{text} {'PASS' if summary['targets'][key] else 'MISS'}" for key, text in _TARGETS.items()
    )


@app.command("evaluate")
def evaluate(
    labels: Annotated[
        Path,
        typer.Option(
            "--labels",
            help="CSV of labelled episodes: venue, symbol, start, end, label (covering, "
            "squeeze, long_liquidation or none) and an optional note; # lines are comments.",
            show_default=False,
        ),
    ],
    windows: WindowsOption = None,
    window: WindowOption = None,
    oi_threshold: OiBandOption = None,
    price_threshold: PriceBandOption = None,
    taper: TaperOption = None,
    adaptive: AdaptiveOption = False,
    reference: ReferenceOption = False,
    evidence: EvidenceOption = None,
    interval: Interval = None,
    start: From = None,
    end: To = None,
    baseline: Annotated[
        bool,
        typer.Option(
            "--baseline", help="Also read the labels with oiradar 0.1's defaults (before/after)."
        ),
    ] = False,
    ablation: Annotated[
        bool,
        typer.Option(
            "--ablation",
            help="Also read them without each squeeze-evidence term, and with each alone.",
        ),
    ] = False,
    sweep: Annotated[
        str | None,
        typer.Option(
            help="A grid of settings instead: --sweep 'windows=15m;15m,30m,1h oi=1.2,1.5 "
            "price=0.8,1 taper=1/1,0.67/0.8 evidence=liquidations;liquidations,taker' (every "
            "combination, ranked, with a multiple-testing warning)."
        ),
    ] = None,
    details: Annotated[
        bool, typer.Option("--details", help="List every label with what the engine read.")
    ] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 when a setting misses a target.")
    ] = False,
    fmt: Annotated[
        Format, typer.Option("--format", help="table, json (everything) or csv (per series).")
    ] = Format.TABLE,
    db: DbOption = None,
) -> None:
    """Score the engine on labelled episodes of stored history: recall of covering and
    squeezes (caught no later than one bar after the labelled end), time from the labelled
    start to the signal, squeeze-vs-covering accuracy, long liquidations read as covering,
    and covering events per symbol-day — per labelled series and in all, against the targets
    in docs/concepts.md#evaluation.

    Import the data first; each series is read at the finest stored bar size covering its
    labels. The labels of the real data sets this project was tuned on are in labels/
    (labels/README.md says how each was chosen).

    Example: oiradar import ../shared/data/real/derived/coinalyze-binance-perp-1h &&
    oiradar evaluate --labels labels/coinalyze-binance-perp-1h.csv --baseline
    """
    from oiradar.services import evaluate as ev

    if sweep and (baseline or ablation):
        raise UserError("--sweep runs its own grid; drop --baseline and --ablation")
    if interval is not None:
        interval_ms(interval)
    rows = ev.read_labels(labels)
    base = EngineChoice(
        windows, window, oi_threshold, price_threshold, taper, adaptive, reference, evidence
    ).params()
    settings = [("these settings", base)]
    if sweep:
        settings = ev.parse_sweep([sweep], base)
    else:
        if ablation:
            settings = evidence_variants(base)
        if baseline:
            settings.append(("oiradar 0.1 defaults", ev.PREVIOUS_DEFAULTS))
    store = _store(readonly=True, db=db)
    show = fmt is Format.TABLE and err.is_terminal
    with store, progress_bar(err, "{task.description:10}", show) as bar:
        task = bar.add_task("loading", total=len({(r.venue, r.symbol) for r in rows}))
        loaded = ev.load(
            store,
            rows,
            interval,
            parse_time(start) if start else None,
            parse_time(end) if end else None,
            lambda s: bar.advance(task),
        )
        bar.update(task, description="reading", total=len(settings), completed=0)
        results = []
        for name, params in settings:
            results.append(ev.run(loaded, name, params))
            bar.advance(task)
    _print(results, fmt, details, bool(sweep), len(rows))
    if check and not all(all(r.summary()["targets"].values()) for r in results):
        raise typer.Exit(1)


def _print(results: list[Any], fmt: Format, details: bool, sweep: bool, n_labels: int) -> None:
    warning = (
        f"{len(results)} settings were tried on the same {n_labels} labels: the best is fitted "
        "to them and flatters itself; judge it on data it has not seen"
        if sweep and len(results) > 1
        else None
    )
    if fmt is Format.JSON:
        doc = {
            "settings": [
                {
                    "name": r.name,
                    "summary": r.summary(),
                    "series": r.per_series(),
                    "labels": [_detail(d) for d in r.details()],
                }
                for r in results
            ],
            "warnings": [warning] if warning else [],
        }
        typer.echo(json.dumps(doc, indent=2))
        return
    if sweep:
        results = sorted(results, key=_rank)
    table: list[dict[str, Any]] = []
    for r in results:
        if not sweep:
            table.extend(
                _cells(r.name, f"{s['symbol']} {s['interval']}", s) for s in r.per_series()
            )
        table.append(_cells(r.name, "all", r.summary()))
    if fmt is Format.CSV:
        emit(table, fmt, columns=SERIES_COLUMNS)
        return
    emit(table, fmt, columns=SERIES_COLUMNS, title="evaluation on labelled episodes")
    for r in results[: 1 if sweep else len(results)]:
        typer.echo(f"{r.name}: {_verdicts(r.summary())}")
    if details:
        emit([_detail(d) for d in results[0].details()], fmt, columns=DETAIL_COLUMNS,
             title=f"labels, {results[0].name}")  # fmt: skip
    if warning:
        err.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)


def _rank(r: Any) -> tuple[int, float, float]:
    s = r.summary()
    met = sum(bool(v) for v in s["targets"].values())
    return (-met, -(s["recall_pct"] or 0.0), s["events_per_symbol_day"] or 0.0)


def _detail(d: dict[str, Any]) -> dict[str, Any]:
    return {
        "venue": d["venue"],
        "symbol": d["symbol"],
        "label": d["label"],
        "start": iso(d["start_ms"]),
        "end": iso(d["end_ms"]),
        "verdict": d["verdict"],
        "signal_at": iso(d["signal_ms"]) if d["signal_ms"] is not None else None,
        "latency_min": d["latency_min"],
        "note": d["note"],
    }
