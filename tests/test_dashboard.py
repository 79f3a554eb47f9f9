"""`oiradar serve`: every API endpoint over real sockets, bad parameters, the token, and the
page in headless Chromium fed live by `oiradar watch` on `oiradar sim`."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from oiradar.records import Candle, FundingSample, OISample
from oiradar.services.alerts import sample_alert
from oiradar.store import open_store
from oiradar.units import MINUTE_MS
from oiradar.web.app import ServeConfig
from oiradar.web.server import check_binding, serving
from tests.conftest import run_cli
from tests.synth import FIVE_MIN, T0

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


def _store_with_market(db: Path) -> None:
    """Two venues of SOLUSDT ending in a short-covering bar, and one alert in the log."""
    n = 400
    close = np.full(n, 150.0)
    oi = np.full(n, 1e6)
    close[-3:] = [151.0, 152.5, 154.0]
    oi[-3:] = [0.99e6, 0.975e6, 0.96e6]
    recs: list[Candle | OISample] = []
    for venue, share in (("binance", 1.0), ("bybit", 0.5)):
        for i in range(n):
            t = T0 + i * FIVE_MIN
            c = float(close[i])
            recs.append(Candle(venue, "SOLUSDT", FIVE_MIN, t, c, c + 0.1, c - 0.1, c, 1000.0))
            recs.append(OISample(venue, "SOLUSDT", t + FIVE_MIN, float(oi[i]) * share))
    with open_store(db) as s:
        s.write_records(recs)
        s.append_alert(sample_alert(T0 + n * FIVE_MIN).to_dict())


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[str, aiohttp.ClientSession, Path]]:
    db = tmp_path / "dash.sqlite"
    _store_with_market(db)
    async with (
        serving(ServeConfig(db, port=0, refresh_s=0.2)) as url,
        aiohttp.ClientSession() as http,
    ):
        yield url, http, db


async def _get(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as r:
        return r.status, await r.json(content_type=None)


async def test_markets_rows_and_cross_venue_aggregates(api: Any) -> None:
    url, http, _ = api
    status, body = await _get(http, f"{url}/api/markets")
    assert status == 200
    assert {r["venue"] for r in body["rows"]} == {"binance", "bybit"}
    assert all(r["regime"] == "SHORT_COVERING" for r in body["rows"])
    (agg,) = body["aggregates"]
    assert agg["symbol"] == "SOLUSDT" and agg["venues"] == 2 and agg["driver"] == "binance"
    assert agg["oi_change_pct"] == pytest.approx(-4.0, abs=1e-6)
    assert agg["oi_usd"] == pytest.approx(0.96e6 * 154.0 * 1.5, rel=1e-6)
    status, hourly = await _get(http, f"{url}/api/markets?window=1h")
    assert status == 200 and hourly["window"] == "1h"


async def test_symbol_chart_events_alerts_status_openapi(api: Any) -> None:
    url, http, _ = api
    status, chart = await _get(http, f"{url}/api/symbols/solusdt/chart?venue=all")
    assert status == 200
    assert chart["symbol"] == "SOLUSDT" and set(chart["venues"]) == {"binance", "bybit"}
    assert len(chart["ts"]) == len(chart["close"]) > 0
    assert chart["regimes"][-1][2] == "SHORT_COVERING"
    assert chart["events"] and chart["events"][-1]["regime"] == "SHORT_COVERING"
    status, events = await _get(http, f"{url}/api/symbols/SOLUSDT/events?venue=bybit&days=5")
    assert status == 200 and events["venue"] == "bybit"
    status, alerts = await _get(http, f"{url}/api/alerts?limit=5")
    assert status == 200 and alerts["alerts"][0]["symbol"] == "SOLUSDT"
    status, st = await _get(http, f"{url}/api/status")
    assert status == 200 and st["state"] == "not running"
    status, spec = await _get(http, f"{url}/api/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
    assert {"/api/markets", "/api/stream", "/api/symbols/{symbol}/chart"} <= set(spec["paths"])
    async with http.get(f"{url}/favicon.ico") as r:  # no 404 in a browser's console
        assert r.status == 200 and r.content_type == "image/svg+xml"
    async with http.get(f"{url}/metrics") as r:  # no watch has written this store
        assert r.status == 200 and "oiradar_watch_up 0.0" in await r.text()


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/api/markets?window=7m", 400, "multiple of 5m"),
        ("/api/markets?window=soon", 400, "not a duration"),
        ("/api/symbols/BTC-USDT/chart", 400, "not a symbol"),
        ("/api/symbols/NOPEUSDT/chart", 404, "no candles for NOPEUSDT"),
        ("/api/symbols/SOLUSDT/chart?venue=kraken", 400, "unknown venue"),
        ("/api/symbols/SOLUSDT/events?venue=gate", 404, "no candles for SOLUSDT"),
        ("/api/symbols/SOLUSDT/chart?from=yesterday", 400, "not an ISO 8601"),
        ("/api/symbols/SOLUSDT/chart?from=2024-06-03&to=2024-06-01", 400, "before"),
        ("/api/symbols/SOLUSDT/events?venue=all", 400, "one venue"),
        ("/api/symbols/SOLUSDT/events?days=0", 400, "whole number"),
        ("/api/alerts?limit=-3", 400, "whole number"),
        ("/api/nothing", 404, "Not Found"),
        # Found by a fuzzer (issue #17): each was a 500.
        ("/api/alerts?limit=²", 400, "whole number"),
        ("/api/symbols/SOLUSDT/events?venue=bybit&days=²", 400, "whole number"),
        ("/api/symbols/SOLUSDT/chart?from=²", 400, "not an ISO 8601"),
        ("/api/symbols/SOLUSDT/chart?from=99999999999999999999", 400, "not an ISO 8601"),
        ("/api/symbols/SOLUSDT/chart?to=0001-01-01", 400, "not an ISO 8601"),
        ("/api/symbols/SOLUSDT/chart?venue=binance%0A", 400, "unknown venue"),
        ("/api/symbols/SOLUSDT%0A/chart", 400, "not a symbol"),
    ],
)
async def test_bad_parameters_are_clear_4xx(api: Any, path: str, status: int, message: str) -> None:
    url, http, _ = api
    async with http.get(url + path) as r:
        text = await r.text()
        assert r.status == status, text
        assert r.content_type == "application/json"
        assert message in json.loads(text)["error"]
        assert "Traceback" not in text


async def test_every_reply_carries_the_security_headers(tmp_path: Path) -> None:
    """Errors, the 401 and the event stream too, not only the pages that went well."""
    from oiradar.web.guard import SECURITY_HEADERS

    db = tmp_path / "h.sqlite"
    _store_with_market(db)
    for token, path in ((None, "/api/alerts?limit=-3"), (None, "/api/nothing"),
                        ("t0ken", "/api/markets"), (None, "/api/stream")):  # fmt: skip
        async with (
            serving(ServeConfig(db, port=0, token=token)) as url,
            aiohttp.ClientSession() as http,
            http.get(url + path) as r,
        ):
            for name, value in SECURITY_HEADERS.items():
                assert r.headers.get(name) == value, (path, r.status, name)


async def test_errors_never_show_the_stores_path(api: Any) -> None:
    """serve.md promises no paths on the page: a 404 says "the store" (issue #12, item 8)."""
    url, http, db = api
    for path in ("/api/symbols/FOOUSDT/chart", "/api/symbols/FOOUSDT/events?venue=okx"):
        async with http.get(url + path) as r:
            text = await r.text()
            assert r.status == 404, text
            assert str(db.parent) not in text and "sqlite" not in text, text
            assert "FOOUSDT" in json.loads(text)["error"]
    _, body = await _get(http, f"{url}/api/symbols/FOOUSDT/chart")
    assert body["error"] == "no candles for FOOUSDT in the store"


async def test_the_symbol_view_draws_a_venue_that_can_show_squeezes(tmp_path: Path) -> None:
    """Bitget streams OI more often than Binance polls it but has no liquidation feed: the
    chart's candles and regimes come from Binance, which can show a squeeze (item 9)."""
    from oiradar.records import LiquidationBar

    db = tmp_path / "venues.sqlite"
    _store_with_market(db)
    recs: list[Candle | OISample | LiquidationBar] = []
    for i in range(400):
        t = T0 + i * FIVE_MIN
        recs.append(Candle("bitget", "SOLUSDT", FIVE_MIN, t, 150.0, 150.1, 149.9, 150.0, 10.0))
        recs += [OISample("bitget", "SOLUSDT", t + k * MINUTE_MS, 2e5) for k in range(1, 6)]
        recs.append(LiquidationBar("binance", "SOLUSDT", FIVE_MIN, t, 0.1, 0.2))
    with open_store(db) as store:
        store.write_records(recs)
        assert store.candle_span("bitget", "SOLUSDT", "5m") is not None
    async with serving(ServeConfig(db, port=0)) as url, aiohttp.ClientSession() as http:
        status, chart = await _get(http, f"{url}/api/symbols/SOLUSDT/chart")
    assert status == 200, chart
    assert set(chart["venues"]) == {"binance", "bybit", "bitget"}
    assert chart["price_venue"] == "binance" and chart["liq_venues"] == ["binance"]


async def test_the_stream_sends_the_table_then_new_alerts(api: Any) -> None:
    url, http, db = api
    async with http.get(f"{url}/api/stream?window=15m") as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        first = await _event(r)
        assert first[0] == "table" and first[1]["aggregates"][0]["symbol"] == "SOLUSDT"
        with open_store(db) as store:  # as the daemon logs an alert it sent
            store.append_alert({**sample_alert(T0).to_dict(), "symbol": "ETHUSDT"})
        kind, payload = await asyncio.wait_for(_event(r), 5)
        assert kind == "alert" and payload["symbol"] == "ETHUSDT"


async def _event(r: aiohttp.ClientResponse) -> tuple[str, Any]:
    kind, data = "", ""
    while True:
        line = (await r.content.readline()).decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and kind:
            return kind, json.loads(data)


async def test_a_token_guards_every_route(tmp_path: Path) -> None:
    db = tmp_path / "t.sqlite"
    _store_with_market(db)
    cfg = ServeConfig(db, port=0, token="s3cret-token")
    jar = aiohttp.CookieJar(unsafe=True)  # keep cookies for 127.0.0.1, as browsers do
    async with serving(cfg) as url, aiohttp.ClientSession(cookie_jar=jar) as http:
        for path in ("/", "/api/markets", "/api/openapi.json", "/static/app.js"):
            async with http.get(url + path) as r:
                assert r.status == 401, path
        async with http.get(
            f"{url}/api/markets", headers={"Authorization": "Bearer s3cret-token"}
        ) as r:
            assert r.status == 200
        async with http.get(f"{url}/?token=s3cret-token", allow_redirects=False) as r:
            assert r.status == 302 and r.headers["Location"] == "/"
            assert "oiradar_token=s3cret-token" in r.headers["Set-Cookie"]
            assert "HttpOnly" in r.headers["Set-Cookie"]
        async with http.get(f"{url}/api/markets") as r:  # the cookie now
            assert r.status == 200
        page = await (await http.get(f"{url}/")).text()
        assert "s3cret-token" not in page


def test_binding_beyond_loopback_needs_a_token(tmp_path: Path) -> None:
    check_binding("127.0.0.1", None)
    check_binding("::1", None)
    with pytest.raises(Exception, match="--token"):
        check_binding("0.0.0.0", None)
    check_binding("0.0.0.0", "x")
    db = tmp_path / "x.sqlite"
    _store_with_market(db)
    res = run_cli("--db", str(db), "serve", "--host", "0.0.0.0")
    assert res.code == 2 and "--token" in res.err and res.err.count("\n") == 1
    res = run_cli("--db", str(tmp_path / "none.sqlite"), "serve")
    assert res.code != 0 and "no store at" in res.err


# -- in a real browser -----------------------------------------------------------------------


def _chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    reason = f"{CHROMIUM} not installed (.ci/run installs Debian's chromium)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


async def test_dashboard_opens_on_every_regime_most_telling_first(tmp_path: Path) -> None:
    """The page opens on all regimes, the covering coin above the quiet one; a regime filter
    that empties the table says so, not "is oiradar watch writing?" (issue #12, item 2)."""
    chromium = _chromium()
    from playwright.async_api import async_playwright

    db = tmp_path / "board.sqlite"
    _store_with_market(db)
    flat = [
        rec
        for i in range(400)
        for rec in (
            Candle("binance", "ETHUSDT", FIVE_MIN, T0 + i * FIVE_MIN, 3e3, 3e3, 3e3, 3e3, 1.0),
            OISample("binance", "ETHUSDT", T0 + (i + 1) * FIVE_MIN, 5e5),
        )
    ]
    # Calm funding, a few 0.0001 % per 8 h: the symbol view's axis must still tell ticks apart.
    calm = [
        FundingSample("binance", "SOLUSDT", T0 + i * 8 * 3_600_000, 0.000004 + 0.000002 * (i % 4))
        for i in range(8)
    ]
    with open_store(db) as store:
        store.write_records([*flat, *calm])
    async with (
        serving(ServeConfig(db, port=0, refresh_s=0.3)) as url,
        async_playwright() as pw,
    ):
        browser = await pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        missing: list[str] = []
        page.on("response", lambda r: missing.append(r.url) if r.status >= 400 else None)
        await page.goto(url)
        await page.wait_for_selector("#markets tbody tr")
        assert await page.input_value("#regime") == ""
        # The regime filter is kept in the address: a reload comes back to it.
        await page.select_option("#regime", "covering")
        assert page.url.endswith("/?regime=covering"), page.url
        await page.reload()
        await page.wait_for_selector("#markets tbody tr")
        assert await page.input_value("#regime") == "covering"
        assert await page.eval_on_selector_all("#markets tbody tr", "rs => rs.length") == 1
        await page.select_option("#regime", "")
        assert "regime=" not in page.url
        order = await page.eval_on_selector_all(
            "#markets tbody tr", "rows => rows.map(r => [r.dataset.symbol, r.dataset.regime])"
        )
        assert order == [["SOLUSDT", "SHORT_COVERING"], ["ETHUSDT", "NEUTRAL"]], order
        assert await page.is_hidden("#empty")
        await page.select_option("#regime", "SHORT_SQUEEZE")
        await page.wait_for_selector("#empty", state="visible")
        assert await page.inner_text("#empty") == "No market in this regime right now."
        await page.select_option("#regime", "")
        await page.click('tr[data-symbol="SOLUSDT"]')
        await page.wait_for_function(
            "document.querySelector('#events-summary').textContent.includes('on binance')"
        )
        summary = await page.inner_text("#events-summary")
        assert "1 event on binance" in summary, summary
        await page.wait_for_selector("#chart .y3tick")
        ticks = await page.eval_on_selector_all(
            "#chart .y3tick", "ts => ts.map(t => t.textContent)"
        )
        assert len(ticks) >= 2 and len(set(ticks)) == len(ticks), ticks
        assert (
            await page.evaluate("fetch('/static/favicon.svg').then(r => r.status)") == 200
        )  # the <link rel=icon> target
        assert not errors, errors
        assert not missing, missing  # no 404, the favicon included
        await browser.close()


async def test_dashboard_in_chromium_turns_a_row_into_a_squeeze_live(tmp_path: Path) -> None:
    """`oiradar watch` on the simulator's ADAUSDT covering-then-squeeze episode writes the
    store; the page, opened once, shows the covering row, then the squeeze, without reload;
    the symbol view draws the chart with its event markers. Screenshots in artifacts/."""
    chromium = _chromium()
    from playwright.async_api import async_playwright

    from oiradar.services.watch import Watch, WatchRequest
    from oiradar.signals.regimes import Regime
    from tests.test_watch import ADA_START, PARAMS, SETTLE
    from tests.watchkit import run_daemon, simulated

    ARTIFACTS.mkdir(exist_ok=True)
    db = tmp_path / "live.sqlite"
    open_store(db).close()
    req = WatchRequest(("binance", "bybit", "okx"), ("ADAUSDT", "BTCUSDT"), None, PARAMS,
                       settle_ms=SETTLE)  # fmt: skip
    async with simulated(db, speed=150.0, start_ms=ADA_START) as run:
        held: list[bool] = []

        def freeze_on_squeeze(daemon: Watch) -> None:
            inner = daemon.decider.on_bar

            def on_bar(venue: str, symbol: str, result: Any, *a: Any) -> Any:
                out = inner(venue, symbol, result, *a)
                if symbol == "ADAUSDT" and result.regime is Regime.SHORT_SQUEEZE and not held:
                    held.append(True)
                    run.sim.ctx.clock.set(speed=0.0)  # hold the squeeze on screen, once
                return out

            daemon.decider.on_bar = on_bar  # type: ignore[method-assign]

        watch = asyncio.create_task(
            run_daemon(
                run, req, ADA_START + 3 * 60 * MINUTE_MS, wall_limit_s=400, probe=freeze_on_squeeze
            )
        )
        try:
            async with (
                serving(ServeConfig(db, port=0, refresh_s=0.3)) as url,
                async_playwright() as pw,
            ):
                browser = await pw.chromium.launch(
                    executable_path=str(chromium), args=CHROMIUM_ARGS
                )
                page = await browser.new_page(viewport={"width": 1440, "height": 900})
                errors: list[str] = []
                page.on("pageerror", lambda e: errors.append(str(e)))
                import time as _t

                t0 = _t.monotonic()

                def mark(what: str) -> None:
                    print(f"{what}: {_t.monotonic() - t0:.1f} s")

                await page.goto(url)
                await page.evaluate("window.__loaded_once = true")
                await page.select_option("#regime", "")  # every regime
                await page.wait_for_selector("#markets tbody tr", timeout=60_000)
                await page.screenshot(path=str(ARTIFACTS / "dashboard-table.png"))
                covering = 'tr[data-symbol="ADAUSDT"][data-regime="SHORT_COVERING"]'
                await page.wait_for_selector(covering, timeout=90_000)
                mark("covering")
                await page.screenshot(path=str(ARTIFACTS / "dashboard-covering.png"))
                squeeze = 'tr[data-symbol="ADAUSDT"][data-regime="SHORT_SQUEEZE"]'
                await page.wait_for_selector(squeeze, timeout=90_000)
                mark("squeeze")
                assert await page.evaluate("window.__loaded_once === true")  # no reload
                await page.wait_for_selector("#alerts li", timeout=30_000)
                await page.screenshot(path=str(ARTIFACTS / "dashboard-squeeze.png"))
                feed = await page.inner_text("#alerts")
                assert "ADAUSDT" in feed
                await page.click(squeeze)
                await page.wait_for_selector("#chart .main-svg", timeout=30_000)
                await page.wait_for_function(
                    "document.querySelectorAll('#events tbody tr').length > 0"
                    " || !document.querySelector('#no-events').hidden",
                    timeout=30_000,
                )
                markers = await page.evaluate(
                    "document.getElementById('chart').data"
                    ".filter(t => t.name === 'events')[0].x.length"
                )
                assert markers >= 1
                shading = await page.evaluate(
                    "document.getElementById('chart').layout.shapes.length"
                )
                assert shading >= 1
                await page.screenshot(path=str(ARTIFACTS / "dashboard-symbol.png"), full_page=True)
                mark("symbol view")
                assert not errors, errors
                await browser.close()
        finally:
            run.sim.ctx.clock.set(speed=3_000.0)  # let the daemon run to its end time
            await watch
