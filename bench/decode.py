"""By-hand benchmark: what the daemon spends per WebSocket message at the venue boundary.

Captures a few seconds of each venue's real frames from `oiradar sim` (500 symbols) over
loopback, then times, per message kind, the stream's own `decode` (json) plus `records` (the
normalized records), against json decoding alone and, when msgspec is installed, msgspec's
untyped decoder on the same texts. With the message rates `bench/watch.py` reports, the
result says whether decoding is worth a typed decoder (issue #14: adopt msgspec only if it
pays).

    python bench/decode.py                    # 500 symbols, 4 s of frames
    python bench/decode.py --symbols 100 --seconds 2
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import aiohttp

from oiradar.sim.server import SimConfig, SimServer
from oiradar.venues.registry import stream
from oiradar.venues.wsstream import Connection, WsStream, connection

KINDS: dict[str, Callable[[str], str]] = {
    "binance": lambda t: "markPrice@arr" if "markPriceUpdate" in t[:200] else "other",
    "bybit": lambda t: t[10:24].split(".")[0].strip('"') if t.startswith('{"topic"') else "op",
    "okx": lambda t: t.split('"channel":"')[1].split('"')[0] if '"channel"' in t else "op",
    "bitget": lambda t: "candle" if "candle" in t[:90] else "ticker",
}


async def capture(
    url: str, venue: str, symbols: list[str], seconds: float
) -> tuple[WsStream, list[str]]:
    """Raw text frames of `venue`'s stream as the daemon subscribes it (candles included),
    with the stream (prepared: OKX's contract sizes read)."""
    ws_stream = stream(venue, url)
    assert isinstance(ws_stream, WsStream)
    ws_stream.want_candles(300_000)
    texts: list[str] = []
    async with aiohttp.ClientSession() as http:
        await ws_stream.prepare(http)
        groups = await ws_stream.plan(http, symbols)
        for k, group in enumerate(groups[:2]):
            conn = connection(k, group)
            async with http.ws_connect(ws_stream.url_for(conn)) as ws:
                for text in ws_stream.subscribe_messages(conn):
                    await ws.send_str(text)
                    await asyncio.sleep(0.3)
                end = time.monotonic() + seconds / 2
                while time.monotonic() < end:
                    try:
                        msg = await ws.receive(timeout=max(0.01, end - time.monotonic()))
                    except TimeoutError:
                        break
                    if msg.type is aiohttp.WSMsgType.TEXT:
                        texts.append(str(msg.data))
    return ws_stream, texts


def time_per(fn: Callable[[str], Any], texts: list[str], rounds: int = 3) -> float:
    """Best of `rounds`: microseconds per text."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for text in texts:
            fn(text)
        best = min(best, time.perf_counter() - t0)
    return best / max(1, len(texts)) * 1e6


def measure(venue: str, ws_stream: WsStream, texts: list[str], symbols: list[str]) -> None:
    wanted = frozenset(symbols)

    conn = Connection(0, symbols)

    def boundary(text: str) -> Any:  # WsStream._handle's path, bar its counters and dedupe
        msg = ws_stream.decode(text)
        if msg is None or ws_stream.dedupe_key(text, msg, conn) is None:
            return None
        return ws_stream.records(msg, wanted)

    try:  # optional: not a dependency (measured here before adopting it)
        msgspec: Any = importlib.import_module("msgspec")
        fast: Callable[[str], Any] | None = msgspec.json.Decoder().decode
    except ImportError:
        fast = None
    by_kind: dict[str, list[str]] = defaultdict(list)
    for text in texts:
        by_kind[KINDS[venue](text)].append(text)
    for kind, group in sorted(by_kind.items()):
        size = sum(map(len, group)) / len(group)
        line = (
            f"{venue:8} {kind:16} n={len(group):6d} {size:8.0f} B  boundary "
            f"{time_per(boundary, group):8.1f} us  json.loads {time_per(json.loads, group):8.1f} us"
        )
        if fast is not None:
            line += f"  msgspec {time_per(fast, group):8.1f} us"
        print(line, flush=True)


async def main(args: argparse.Namespace) -> None:
    cfg = SimConfig(symbols=args.symbols, speed=10.0)
    async with SimServer(cfg) as sim:
        symbols = sim.ctx.market.symbols
        for venue in ("binance", "bybit", "okx", "bitget"):
            ws_stream, texts = await capture(sim.url, venue, symbols, args.seconds)
            measure(venue, ws_stream, texts, symbols)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--symbols", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=4.0)
    asyncio.run(main(ap.parse_args()))
