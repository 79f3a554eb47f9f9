"""What a backfill did, per venue: chunks fetched and skipped, rows stored per kind, and
what no source could give (each reason with its days and symbols)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from oiradar.kinds import Kind
from oiradar.services.backfill.plan import NO_DATA_HINTS, Chunk


@dataclass(slots=True)
class Missing:
    """Where one reason left data out: which days and symbols."""

    days: set[str] = field(default_factory=set)
    symbols: set[str] = field(default_factory=set)

    def text(self, reason: str) -> str:
        days, names = sorted(self.days), sorted(self.symbols)
        span = days[0] if len(days) == 1 else f"{days[0]}..{days[-1]}"
        who = ", ".join(names) if len(names) <= 3 else f"{len(names)} symbols"
        return f"{reason} [{who}; {len(days)} day(s), {span}]"


@dataclass(slots=True)
class VenueReport:
    venue: str
    symbols: int = 0
    chunks: int = 0
    fetched: int = 0
    skipped: int = 0
    rows: Counter[str] = field(default_factory=Counter)
    archive_files: int = 0
    requests: int = 0
    missing: dict[str, Missing] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    failed: str | None = None

    def note(self, reason: str, symbol: str, chunk: Chunk) -> None:
        where = self.missing.setdefault(reason, Missing())
        where.days.add(chunk.day)
        where.symbols.add(symbol)

    def row(self) -> dict[str, object]:
        return {
            "venue": self.venue,
            "symbols": self.symbols,
            "chunks": self.chunks,
            "fetched": self.fetched,
            "skipped": self.skipped,
            "candles": self.rows[Kind.CANDLES.value],
            "open_interest": self.rows[Kind.OPEN_INTEREST.value],
            "funding": self.rows[Kind.FUNDING.value],
            "premium_index": self.rows[Kind.PREMIUM_INDEX.value],
            "positioning": self.rows[Kind.POSITIONING.value],
            "liquidations": self.rows[Kind.LIQUIDATIONS.value]
            + self.rows[Kind.LIQUIDATION_ORDERS.value],
            "archive_files": self.archive_files,
            "requests": self.requests,
            "missing": [m.text(reason) for reason, m in self.missing.items()],
            "failed": self.failed,
        }


@dataclass(slots=True)
class BackfillResult:
    venues: list[VenueReport] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # archive files rejected, one line each
    archive_down: str | None = None  # the archive did not answer; the run went on without it

    @property
    def failed(self) -> list[str]:
        return [v.venue for v in self.venues if v.failed]


def shortfall_reason(
    venue: str, kind: str, asked: bool, read: bool, rest_down: str | None
) -> str | None:
    """Why part of a chunk of `kind` stays missing (`asked`: the venue was asked; `read`: the
    archive was read); None when the archive already said why."""
    if asked:
        hint = NO_DATA_HINTS.get((venue, kind), "before the listing, or a venue gap")
        return f"{venue} has no {kind} for all or part of these days ({hint})"
    if rest_down is not None and not read:
        return f"{kind} not fetched: {venue} failed ({rest_down})"
    if read:
        return f"the archive's files lack {kind} for all or part of these days"
    return None
