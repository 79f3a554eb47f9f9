"""Engine parameters with the defaults of docs/concepts.md (all percentages in %)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from oiradar.errors import UserError
from oiradar.units import DAY_MS, HOUR_MS, MINUTE_MS


class Evidence(StrEnum):
    """Terms that can upgrade short covering to a squeeze (docs/concepts.md#squeeze)."""

    LIQUIDATIONS = "liquidations"  # a burst of short liquidations, dominant over longs
    TAKER = "taker"  # net taker buying that outruns the OI drop
    PREMIUM = "premium"  # the premium turned positive while funding is still negative
    POSITIONING = "positioning"  # covering while shorts are crowded (long/short accounts low)


# Measured on the labelled real data (docs/concepts.md#squeeze): liquidations, taker flow and
# crowded shorts each upgrade labelled squeezes where the others have no data; the premium
# cannot be measured there (no premium history in it), so it is opt-in.
DEFAULT_EVIDENCE = (Evidence.LIQUIDATIONS, Evidence.TAKER, Evidence.POSITIONING)
DEFAULT_WINDOWS_MS = (15 * MINUTE_MS, 30 * MINUTE_MS, HOUR_MS)


@dataclass(frozen=True, slots=True)
class EngineParams:
    # Horizons evaluated at once; one episode is one event whichever of them fire.
    windows_ms: tuple[int, ...] = DEFAULT_WINDOWS_MS
    # Bands at 15 min (and shorter horizons); longer ones taper geometrically to band x taper
    # at 1 h and beyond: covering traders call covering does not grow with the horizon.
    oi_threshold_pct: float = 1.5
    price_threshold_pct: float = 1.0
    oi_taper: float = 2 / 3
    price_taper: float = 0.8
    # Adaptive: threshold = k x robust sigma (1.4826 x median |change|) of the trailing window.
    adaptive: bool = False
    adaptive_k: float = 3.0
    adaptive_lookback_ms: int = 7 * DAY_MS
    # Trailing baselines (adaptive thresholds, liquidations, volume) need this much history.
    min_history_ms: int = DAY_MS
    adaptive_floor_frac: float = 0.2
    # Strong short covering: OI down >= 5 % within <= 30 min while price rises.
    strong_oi_drop_pct: float = 5.0
    strong_within_ms: int = 30 * MINUTE_MS
    # Squeeze evidence, any of which upgrades a covering bar.
    evidence: tuple[Evidence, ...] = DEFAULT_EVIDENCE
    # Liquidations: short liquidations over the burst window spike against their own trailing
    # median, reach a share of OI and dominate long liquidations.
    liq_window_ms: int = 15 * MINUTE_MS
    squeeze_k: float = 3.0
    squeeze_min_oi_share_pct: float = 0.01
    squeeze_short_long_ratio: float = 3.0
    # Taker flow: net taker buying (base) over the reading's window >= this x the OI drop.
    taker_outrun: float = 2.0
    # Premium: the premium index at or above this (a fraction) while funding is <= 0.
    premium_min: float = 0.0002
    # Positioning: all accounts' long/short ratio at or below this (shorts crowded).
    crowded_ratio: float = 0.8
    # Funding (8 h equivalent, fraction) at or below this says more covering is likely to come.
    more_to_come_funding_8h: float = -0.0001
    context_lookback_ms: int = 7 * DAY_MS
    report_windows_ms: tuple[int, ...] = (15 * MINUTE_MS, 30 * MINUTE_MS, HOUR_MS)
    reference: bool = False

    @property
    def window_ms(self) -> int:
        """The shortest horizon: the one a single-window reader (and `--window`) means."""
        return min(self.windows_ms)


def parse_evidence(text: str | None) -> tuple[Evidence, ...]:
    """'liquidations,taker' -> the terms; None -> the defaults; 'none' -> no evidence."""
    if text is None:
        return DEFAULT_EVIDENCE
    if text.strip().lower() == "none":
        return ()
    out = []
    for part in text.split(","):
        try:
            out.append(Evidence(part.strip().lower()))
        except ValueError:
            known = ", ".join(e.value for e in Evidence)
            raise UserError(f"unknown evidence {part.strip()!r}: use {known} or none") from None
    return tuple(dict.fromkeys(out))


def ablation(params: EngineParams) -> list[tuple[str, EngineParams]]:
    """These settings, then each squeeze-evidence term removed from them or alone, then none:
    how `evaluate --ablation` and `backtest --ablation` show what each term adds."""
    out = [("these settings", params)]
    for term in Evidence:
        if term in params.evidence and len(params.evidence) > 1:
            rest = tuple(e for e in params.evidence if e is not term)
            out.append((f"without {term.value}", replace(params, evidence=rest)))
        if params.evidence != (term,):
            out.append((f"only {term.value}", replace(params, evidence=(term,))))
    out.append(("no squeeze evidence", replace(params, evidence=())))
    return out
