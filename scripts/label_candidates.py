"""Screen stored history for labelling candidates: the first step of labels/*.csv.

Usage: python scripts/label_candidates.py --db STORE [--venue binance] [--interval 5m]

Prints CSV rows (venue, symbol, start, end, label, note) for every stored symbol:
- covering: OI (base) down >= 1.2 % while price up >= 1.0 % over a window of 15 to 60
  minutes (5-minute steps; one bar on hourly data);
- long_liquidation: OI down >= 1.5 % while price down >= 1.0 % over such a window.
Windows that overlap or touch form one candidate. It starts where the window that
qualifies first (the earliest end, then the largest OI drop) starts, and ends at the
candidate's price extreme (the highest close for covering, the lowest for a long
liquidation), not before that first window ends: the move as a trader would mark it. Where a
long-liquidation and a covering candidate overlap, the earlier one ends where the later
begins. With per-bar liquidations, a covering hour whose short liquidations are in the top
5 % of the symbol's hours in the data and at least 4x its long liquidations is printed as
`squeeze`. The candidates are then checked by hand against public reports (labels/README.md).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import dataclass

import numpy as np

from oiradar.signals.windows import Grid, build_grid, pct_change
from oiradar.store import open_store
from oiradar.units import iso

COVER_OI, COVER_PX = -1.2, 1.0
LONG_OI, LONG_PX = -1.5, -1.0
SQUEEZE_PCTILE, SQUEEZE_DOMINANCE = 95.0, 4.0


@dataclass
class Candidate:
    label: str
    first: int  # bar index of the window's first bar
    last: int  # bar index of the window's last bar
    oi_pct: float
    px_pct: float

    window: int = 0  # bars of the window that qualified first

    def note(self, bar_ms: int) -> str:
        minutes = self.window * bar_ms // 60_000
        return f"first qualified: OI {self.oi_pct:+.2f} %, price {self.px_pct:+.2f} % in {minutes}m"


def _windows(bar_ms: int) -> list[int]:
    minutes = bar_ms // 60_000
    if minutes >= 60:
        return [1]
    return sorted({m // minutes for m in range(15, 61, 5) if m % minutes == 0})


def screen(g: Grid, label: str) -> list[Candidate]:
    hits: list[Candidate] = []
    for w in _windows(g.bar_ms):
        oi, px = pct_change(g.oi, w), pct_change(g.close, w)
        if label == "covering":
            ok = (oi <= COVER_OI) & (px >= COVER_PX)
        else:
            ok = (oi <= LONG_OI) & (px <= LONG_PX)
        hits += [Candidate(label, int(i) - w + 1, int(i), oi[i], px[i]) for i in np.flatnonzero(ok)]
    hits.sort(key=lambda c: (c.first, c.last))
    clusters: list[list[Candidate]] = []
    for c in hits:
        if clusters and c.first <= max(x.last for x in clusters[-1]) + 1:
            clusters[-1].append(c)
        else:
            clusters.append([c])
    out = []
    for cl in clusters:
        first = min(cl, key=lambda c: (c.last, c.oi_pct))
        span = g.close[first.first : max(x.last for x in cl) + 1]
        extreme = np.nanargmax(span) if label == "covering" else np.nanargmin(span)
        last = max(first.last, first.first + int(extreme))
        window = first.last - first.first + 1
        out.append(Candidate(label, first.first, last, first.oi_pct, first.px_pct, window))
    return out


def squeeze_hour(g: Grid, c: Candidate) -> bool:
    short, long_ = g.liq_short_usd, g.liq_long_usd
    known = ~np.isnan(short)
    if g.bar_ms < 3_600_000 or not known.any():
        return False
    s = float(np.nansum(short[c.first : c.last + 1]))
    lo = float(np.nansum(long_[c.first : c.last + 1]))
    return s >= np.percentile(short[known], SQUEEZE_PCTILE) and s >= SQUEEZE_DOMINANCE * lo


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True)
    ap.add_argument("--venue", default="binance")
    ap.add_argument("--interval", default=None)
    args = ap.parse_args(argv)
    out = csv_writer()
    with open_store(args.db, readonly=True) as store:
        for venue, symbol in store.symbols():
            if venue != args.venue:
                continue
            ivls = store.intervals(venue, symbol)
            for ivl in [args.interval] if args.interval else ivls:
                g = build_grid(store.read_series(venue, symbol, ivl))
                found = screen(g, "covering") + screen(g, "long_liquidation")
                found.sort(key=lambda c: c.first)
                notes = [c.note(g.bar_ms) for c in found]
                for prev, nxt in itertools.pairwise(found):
                    if prev.last >= nxt.first:
                        prev.last = nxt.first - 1
                for c, note in zip(found, notes, strict=True):
                    kind = "squeeze" if c.label == "covering" and squeeze_hour(g, c) else c.label
                    start, end = int(g.ts[c.first]), int(g.ts[c.last]) + g.bar_ms
                    out.writerow([venue, symbol, iso(start), iso(end), kind, note])
    return 0


def csv_writer():  # type: ignore[no-untyped-def]
    import csv

    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow(["venue", "symbol", "start", "end", "label", "note"])
    return w


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
