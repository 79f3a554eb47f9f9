"""What a backtest asks for, in a module of its own so the study's stages (trades,
summary) and the pipeline that runs them (`research.backtest`) all read it without
importing each other."""

from __future__ import annotations

from dataclasses import dataclass, field

from oiradar.signals.params import EngineParams
from oiradar.signals.regimes import Regime
from oiradar.units import HOUR_MS, MINUTE_MS

HORIZONS_MS = (15 * MINUTE_MS, HOUR_MS, 4 * HOUR_MS, 24 * HOUR_MS)


@dataclass(frozen=True, slots=True)
class BacktestRequest:
    venue: str = "binance"
    symbols: tuple[str, ...] | None = None  # None: every symbol stored for the venue
    start_ms: int | None = None
    end_ms: int | None = None
    interval: str | None = None
    regimes: tuple[Regime, ...] = (Regime.SHORT_COVERING,)
    params: EngineParams = field(default_factory=EngineParams)
    horizons_ms: tuple[int, ...] = HORIZONS_MS
    cost_bps: float = 10.0  # round trip: fees plus slippage
    control_per_event: int = 20
    drop_top: int = 2
    seed: int = 7
    bootstrap_n: int = 2000
