"""OKX v5 public market data, instType SWAP (USDT-margined linear), as the simulator serves it:
the venue's state (instruments over the market's symbols), bar grids, and the payload rows
REST and the WebSockets both send (instrument, OI, candle, funding, ticker, mark price).

Assumptions where the doc is silent (exchange-apis.md §3):
- `ctVal` = 10^floor(log10(1000 / first price)), so a contract is worth 100-1000 USDT at
  listing (BTC 0.01, ETH 0.1, a 0.1 USDT coin 10000); `lotSz` = `minSz` = 0.01 contract.
  Contract counts round to the lot, so `oiCcy` = `oi` x `ctVal` and `volCcy` = `vol` x `ctVal`
  exactly. Numbers drop trailing zeros, as OKX's do; `listTime` is the data's first bar.
- OKX carries its VENUE_SHARE of OI and liquidations; candle and ticker volumes are the whole
  market's (as the Binance venue does).
- Candle and OI-history grids align to the UTC epoch; 6H and longer without the `utc` suffix
  open at UTC+8 midnight, weeks on Monday, months on the 1st; the first bar may start before
  the data (partial, like a listing day). A running candle aggregates the closed base bars
  and the running one's open (`confirm` "0").
- Funding: `realizedRate` = `fundingRate`; `premium` = rate minus the interest part
  (0.01 % per 8 h); `settState` is always "settled".
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from oiradar.sim.context import SimContext, dec, json_response, price_decimals
from oiradar.sim.market import (
    SymbolData,
    completed,
    funding_history,
    funding_now,
    last_price,
    oi_at,
)

VENUE = "okx"
PREFIXES = ("/api/v5/",)
HOUR, DAY = 3_600_000, 86_400_000
LOT_DP = 2  # lotSz 0.01 contract
RATE_CAP = 0.00375
_LONG = ("6H", "12H", "1D", "2D", "3D", "1W", "1M", "3M")
CANDLE_BARS = frozenset(
    ("1m", "3m", "5m", "15m", "30m", "1H", "2H", "4H", *_LONG, *(b + "utc" for b in _LONG))
)
_LONG_OI = (*_LONG, "5D")
OI_PERIODS = frozenset(
    ("5m", "15m", "30m", "1H", "2H", "4H", *_LONG_OI, *(b + "utc" for b in _LONG_OI))
)
_UNIT_MS = {"m": 60_000, "H": HOUR, "D": DAY, "W": 7 * DAY}


def _pow10(exp: int) -> str:
    return str(10**exp) if exp >= 0 else f"{10.0**exp:.{-exp}f}"


def _month_ms(index: int) -> int:
    return int(datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC).timestamp() * 1000)


def _month_index(t: int) -> int:
    d = datetime.fromtimestamp(t / 1000, UTC)
    return d.year * 12 + d.month - 1


@dataclass(frozen=True, slots=True)
class Bar:
    """A bar or period: `step_ms` (or calendar `months`), its grid shifted by `offset_ms`."""

    step_ms: int
    months: int = 0
    offset_ms: int = 0

    def floor(self, t: int) -> int:
        """Open of the bar holding `t`."""
        if self.months:
            m = _month_index(t - self.offset_ms) // self.months * self.months
            return _month_ms(m) + self.offset_ms
        return (t - self.offset_ms) // self.step_ms * self.step_ms + self.offset_ms

    def next(self, t: int) -> int:
        if self.months:
            return _month_ms(_month_index(t - self.offset_ms) + self.months) + self.offset_ms
        return t + self.step_ms

    def prev(self, t: int) -> int:
        return self.floor(t - 1)

    def ceil(self, t: int) -> int:
        return self.next(self.floor(t - 1))


def parse_bar(text: str, allowed: frozenset[str]) -> Bar | None:
    """'5m' / '1H' / '1D' (UTC+8) / '1Dutc' -> Bar; None when the venue does not know it."""
    if text not in allowed:
        return None
    body = text.removesuffix("utc")
    n, unit = int(body[:-1]), body[-1]
    shift = 0 if text.endswith("utc") or unit == "m" or (unit == "H" and n < 6) else 8 * HOUR
    if unit == "M":
        return Bar(0, n, -shift)
    return Bar(n * _UNIT_MS[unit], 0, (4 * DAY if unit == "W" else 0) - shift)


@dataclass(frozen=True, slots=True)
class Inst:
    """One swap: `ctVal` = 10**ct_exp coin per contract; sizes travel as integer lots."""

    inst_id: str
    sd: SymbolData
    ct_exp: int
    px_dp: int

    @property
    def family(self) -> str:
        return self.inst_id.removesuffix("-SWAP")

    def lots(self, base: float) -> int:
        return max(0, round(base * 10.0 ** (LOT_DP - self.ct_exp)))

    def contracts(self, lots: int) -> str:
        return dec(lots / 10**LOT_DP, LOT_DP)

    def coin(self, lots: int) -> float:
        return lots * 10.0 ** (self.ct_exp - LOT_DP)

    def coin_str(self, lots: int) -> str:
        return dec(self.coin(lots), max(0, LOT_DP - self.ct_exp))

    def px(self, price: float) -> str:
        return dec(price, self.px_dp)


class Okx:
    """The venue's state: instrument ids over the market's symbols, connection ids."""

    def __init__(self, ctx: SimContext) -> None:
        self.ctx = ctx
        self.ids = {f"{s.removesuffix('USDT')}-USDT-SWAP": s for s in ctx.market.symbols}
        self._insts: dict[str, Inst] = {}
        self.conn_seq = itertools.count(1)

    def inst(self, inst_id: str) -> Inst | None:
        """The live instrument, or None (unknown, or not listed yet at simulated now)."""
        symbol = self.ids.get(inst_id)
        if symbol is None:
            return None
        inst = self._insts.get(inst_id)
        if inst is None:
            sd = self.ctx.market.get(symbol)
            exp = math.floor(math.log10(1000 / max(float(sd.close[0]), 1e-9)))
            inst = self._insts[inst_id] = Inst(inst_id, sd, exp, price_decimals(sd))
        return inst if inst.sd.first_ms <= self.ctx.now_ms() else None

    def insts(self) -> list[Inst]:
        return [i for i in map(self.inst, self.ids) if i is not None]


OKX = web.AppKey("okx", Okx)


def too_many() -> web.Response:
    return json_response({"code": "50011", "msg": "Too Many Requests", "data": []}, status=429)


# Fields that are the same for every USDT swap here (sizes in contracts).
_SWAP_STATIC = {
    **dict.fromkeys(("alias", "baseCcy", "expTime", "optType", "quoteCcy", "stk"), ""),
    **dict.fromkeys(("maxIcebergSz", "maxLmtSz", "maxTriggerSz", "maxTwapSz"), "100000000"),
    **dict.fromkeys(("maxMktSz", "maxStopSz"), "10000"),
    **dict.fromkeys(("lotSz", "minSz"), _pow10(-LOT_DP)),
    "category": "1", "ctMult": "1", "ctType": "linear", "groupId": "2", "instType": "SWAP",
    "ruleType": "normal", "settleCcy": "USDT", "state": "live",
}  # fmt: skip


def instrument_row(i: Inst) -> dict[str, Any]:
    lever = "100" if i.sd.base in ("BTC", "ETH") else "50"
    return {**_SWAP_STATIC, "ctVal": _pow10(i.ct_exp), "ctValCcy": i.sd.base, "lever": lever,
            "instFamily": i.family, "instId": i.inst_id, "listTime": str(i.sd.first_ms),
            "tickSz": _pow10(-i.px_dp), "uly": i.family}  # fmt: skip


def oi_row(v: Okx, i: Inst, now: int) -> dict[str, Any]:
    lots = i.lots(oi_at(i.sd, now) * v.ctx.share(VENUE))
    usd = i.coin(lots) * last_price(i.sd, now)
    return {"instId": i.inst_id, "instType": "SWAP", "oi": i.contracts(lots),
            "oiCcy": i.coin_str(lots), "oiUsd": dec(usd, 2), "ts": str(now)}  # fmt: skip


def candle_row(i: Inst, bar: Bar, t: int, now: int) -> list[str]:
    """[ts,o,h,l,c,vol(contracts),volCcy(coin),volCcyQuote(USDT),confirm] as of `now`."""
    sd = i.sd
    i0, end = max(0, (t - sd.first_ms) // sd.bar_ms), bar.next(t)
    i1 = min((end - sd.first_ms) // sd.bar_ms, completed(sd, now))
    o = h = lo = c = float(sd.open[i0])
    vol = quote = 0.0
    if i1 > i0:
        seg = slice(i0, i1)
        h, lo, c = float(sd.high[seg].max()), float(sd.low[seg].min()), float(sd.close[i1 - 1])
        vol, quote = float(sd.volume[seg].sum()), float((sd.volume[seg] * sd.close[seg]).sum())
    lots = i.lots(vol)
    confirm = "1" if end <= min(now, sd.end_ms) else "0"
    return [str(t), i.px(o), i.px(h), i.px(lo), i.px(c), i.contracts(lots), i.coin_str(lots),
            dec(quote, 4), confirm]  # fmt: skip


def funding_row(v: Okx, i: Inst, now: int) -> dict[str, Any]:
    sd = i.sd
    rate, next_t = funding_now(sd, now)
    step = int(sd.funding_interval_h * HOUR)
    settled = funding_history(sd, next_t - step, next_t - step, now)
    interest = 0.0001 * sd.funding_interval_h / 8
    return {
        "instId": i.inst_id, "instType": "SWAP", "method": "current_period",
        "formulaType": "withRate", "fundingRate": dec(rate, 8), "nextFundingRate": "",
        "fundingTime": str(next_t), "nextFundingTime": str(next_t + step),
        "minFundingRate": dec(-RATE_CAP, 8), "maxFundingRate": dec(RATE_CAP, 8),
        "interestRate": dec(interest, 8), "impactValue": "20000", "settState": "settled",
        "settFundingRate": dec(settled[-1][1] if settled else rate, 8),
        "premium": dec(rate - interest, 8), "ts": str(now),
    }  # fmt: skip


def ticker_row(i: Inst, now: int) -> dict[str, Any]:
    """24 h rolling stats; volumes are contracts (vol24h) and coin (volCcy24h)."""
    sd, last = i.sd, last_price(i.sd, now)
    seg = slice(completed(sd, now - DAY), completed(sd, now))
    span = seg.stop > seg.start
    lots = i.lots(float(sd.volume[seg].sum()))
    size = max(1, i.lots(float(sd.volume[max(seg.stop - 1, 0)]) / 500))
    day8 = (now + 8 * HOUR) // DAY * DAY - 8 * HOUR
    return {
        "instType": "SWAP", "instId": i.inst_id, "last": i.px(last),
        "lastSz": i.contracts(size), "askPx": i.px(last + 10.0**-i.px_dp),
        "askSz": i.contracts(3 * size), "bidPx": i.px(last), "bidSz": i.contracts(2 * size),
        "open24h": i.px(last_price(sd, now - DAY)),
        "high24h": i.px(max(float(sd.high[seg].max()), last) if span else last),
        "low24h": i.px(min(float(sd.low[seg].min()), last) if span else last),
        "volCcy24h": i.coin_str(lots), "vol24h": i.contracts(lots), "ts": str(now),
        "sodUtc0": i.px(last_price(sd, now // DAY * DAY)), "sodUtc8": i.px(last_price(sd, day8)),
    }  # fmt: skip


def mark_row(i: Inst, now: int) -> dict[str, Any]:
    return {"instType": "SWAP", "instId": i.inst_id, "markPx": i.px(last_price(i.sd, now)),
            "ts": str(now)}  # fmt: skip
