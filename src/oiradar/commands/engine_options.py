"""The engine options every reading command shares (analyze, regimes, chart, scan, watch,
backtest, report, evaluate, serve): one definition of each flag and one place that turns
them into `EngineParams`, so the commands cannot drift apart."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Annotated

import typer

from oiradar.errors import UserError
from oiradar.signals.horizons import horizons
from oiradar.signals.params import (
    DEFAULT_EVIDENCE,
    DEFAULT_WINDOWS_MS,
    EngineParams,
    Evidence,
    parse_evidence,
)
from oiradar.units import interval_ms, interval_name

_DEFAULTS = EngineParams()
_DEFAULT_WINDOWS = ",".join(interval_name(w) for w in DEFAULT_WINDOWS_MS)
_DEFAULT_EVIDENCE = ",".join(e.value for e in DEFAULT_EVIDENCE)

WindowsOption = Annotated[
    str | None,
    typer.Option(
        "--windows",
        help="Horizons read at once, a comma list: each bar is covering if any of them says so "
        f"(one episode, one event). [default: {_DEFAULT_WINDOWS}; horizons that are not a "
        "multiple of the data's bars are left out, one bar when none is]",
        show_default=False,
    ),
]
WindowOption = Annotated[
    str | None,
    typer.Option(
        "--window",
        help="One horizon only (the single-window form), a multiple of the bar size: 15m, "
        "50m, 1h...",
        show_default=False,
    ),
]
OiBandOption = Annotated[
    float | None,
    typer.Option(
        "--oi-threshold",
        help="OI flat band at 15m, +/- %; longer horizons taper it (see --taper). "
        f"[default: {_DEFAULTS.oi_threshold_pct}]",
        show_default=False,
    ),
]
PriceBandOption = Annotated[
    float | None,
    typer.Option(
        "--price-threshold",
        help="Price flat band at 15m, +/- %; longer horizons taper it (see --taper). "
        f"[default: {_DEFAULTS.price_threshold_pct}]",
        show_default=False,
    ),
]
TaperOption = Annotated[
    str | None,
    typer.Option(
        "--taper",
        help="OI,PRICE: the bands' factor at 1h and beyond, geometric from 15m "
        f"(docs/concepts.md#horizons). [default: {_DEFAULTS.oi_taper:.2f},"
        f"{_DEFAULTS.price_taper:g}; 1,1 = the same band at every horizon]",
        show_default=False,
    ),
]
AdaptiveOption = Annotated[
    bool,
    typer.Option(
        "--adaptive",
        help="Bands = 3 robust sigmas of the symbol's own trailing 7-day changes at each "
        "horizon (floored at 0.2x the fixed ones).",
    ),
]
ReferenceOption = Annotated[
    bool,
    typer.Option(
        "--reference",
        help="The blog-post classifier instead: last 10 5m candles, OI +/-1.5 %, price +/-1 %, "
        "NEW_LONGS / SHORT_COVERING / LONG_LIQUIDATION / NONE.",
    ),
]
EvidenceOption = Annotated[
    str | None,
    typer.Option(
        "--evidence",
        help="What can upgrade covering to a squeeze, a comma list of "
        f"{', '.join(e.value for e in Evidence)}, or none. [default: {_DEFAULT_EVIDENCE}]",
        show_default=False,
    ),
]


@dataclass(frozen=True, slots=True)
class EngineChoice:
    """The engine options as given, before the bar size is known."""

    windows: str | None = None
    window: str | None = None
    oi_threshold: float | None = None
    price_threshold: float | None = None
    taper: str | None = None
    adaptive: bool = False
    reference: bool = False
    evidence: str | None = None

    def params(self, *, grid_ms: int | None = None, **extra: object) -> EngineParams:
        """`EngineParams` for these options; `grid_ms` demands every horizon be a multiple
        of a fixed bar (scan and watch read 5m bars)."""
        if self.reference and (
            self.adaptive
            or self.window
            or self.windows
            or self.taper
            or self.oi_threshold is not None
            or self.price_threshold is not None
        ):
            raise UserError(
                "--reference uses its own fixed window and thresholds; drop --window(s), "
                "--adaptive, --taper and the threshold options"
            )
        if self.window and self.windows:
            raise UserError("use --window (one horizon) or --windows (several), not both")
        windows = _windows(self.window or self.windows)
        if grid_ms is not None:
            for w in windows:
                if w % grid_ms:
                    raise UserError(
                        f"window {interval_name(w)} is not a multiple of the "
                        f"{interval_name(grid_ms)} bars this command reads"
                    )
        oi = _DEFAULTS.oi_threshold_pct if self.oi_threshold is None else self.oi_threshold
        px = _DEFAULTS.price_threshold_pct if self.price_threshold is None else self.price_threshold
        for name, value in (("--oi-threshold", oi), ("--price-threshold", px)):
            if not math.isfinite(value) or value <= 0:
                raise UserError(f"{name} must be a positive number of percent, not {value}")
        oi_taper, px_taper = _taper(self.taper)
        params = replace(
            _DEFAULTS,
            windows_ms=windows,
            oi_threshold_pct=oi,
            price_threshold_pct=px,
            oi_taper=oi_taper,
            price_taper=px_taper,
            adaptive=self.adaptive,
            reference=self.reference,
            evidence=parse_evidence(self.evidence),
        )
        return replace(params, **extra) if extra else params  # type: ignore[arg-type]

    def note(self, params: EngineParams, bar_ms: int) -> str | None:
        """Say which of the horizons asked for with --windows the data's bars leave out."""
        if not self.windows or params.reference:
            return None
        hz = horizons(params, bar_ms)
        if not hz.skipped_ms:
            return None
        left = ", ".join(interval_name(w) for w in hz.skipped_ms)
        return (
            f"{left} left out: not a multiple of the data's {interval_name(bar_ms)} bars "
            f"(reading {', '.join(hz.names())})"
        )


def _windows(text: str | None) -> tuple[int, ...]:
    if not text:
        return DEFAULT_WINDOWS_MS
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise UserError("--windows needs at least one horizon, e.g. 15m,30m,1h")
    return tuple(sorted({interval_ms(p) for p in parts}))


def _taper(text: str | None) -> tuple[float, float]:
    if text is None:
        return _DEFAULTS.oi_taper, _DEFAULTS.price_taper
    try:
        oi, px = (float(x) for x in text.split(","))
    except ValueError:
        raise UserError(f"--taper {text!r}: expected OI,PRICE factors, e.g. 0.67,0.8") from None
    for value in (oi, px):
        if not math.isfinite(value) or value <= 0:
            raise UserError(f"--taper {text!r}: factors must be positive numbers")
    return oi, px
