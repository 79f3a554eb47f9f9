"""Config, alert sinks, the gate and the dispatcher, against a real local HTTP receiver."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from oiradar import config as cfgmod
from oiradar.config import Secret, SinkConfig, SinkType
from oiradar.errors import ConfigError
from oiradar.services.alerts import (
    Alert,
    AlertKind,
    Delivery,
    Dispatcher,
    Gate,
    build_sink,
    sample_alert,
)
from oiradar.signals.regimes import Regime
from tests.conftest import run_cli

TS = 1_780_000_000_000
TOKEN = "987654:SECRET-planted-token-xyz"
WAIT_S = 5.0


@dataclass
class Receiver:
    """Records every request; answers each path with the queued statuses, then 200."""

    base: str = ""
    requests: list[tuple[str, Any]] = field(default_factory=list)
    plan: dict[str, list[int]] = field(default_factory=dict)
    always: dict[str, int] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    gate: asyncio.Event | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append((request.path, body))
        self.arrived.set()
        if request.path.startswith("/slow") and self.gate is not None:
            await self.gate.wait()
        if request.path in self.always:
            # Echo the request target (a token!) the way a careless server would.
            status = self.always[request.path]
            return web.Response(status=status, text=f"bad request {request.path_qs}")
        if request.path == "/echo-auth":
            # The credential sits across the 160-character cut of the shown body.
            return web.Response(status=400, text="x" * 150 + request.headers["Authorization"])
        queued = self.plan.get(request.path)
        status = queued.pop(0) if queued else 200
        return web.Response(status=status, text="ok" if status == 200 else "try later")

    def bodies(self, path: str) -> list[Any]:
        return [b for p, b in self.requests if p == path]

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        async def loop() -> None:
            while not predicate():
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(loop(), WAIT_S)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    server = web.Application()
    server.router.add_post("/{tail:.*}", rec.handle)
    runner = web.AppRunner(server, access_log=None)  # its log is not ours to check
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    rec.base = f"http://127.0.0.1:{port}"
    yield rec
    if rec.gate is not None:
        rec.gate.set()
    await runner.cleanup()


def alert(
    regime: str = "SHORT_COVERING",  # its name, as the config spells it
    kind: AlertKind = AlertKind.NEW,
    ts_ms: int = TS,
    symbol: str = "SOLUSDT",
    confidence: int = 70,
) -> Alert:
    return replace(
        sample_alert(ts_ms),
        regime=Regime[regime],
        kind=kind,
        symbol=symbol,
        confidence=confidence,
    )


def parse(text: str, **env: str) -> cfgmod.Config:
    return cfgmod.parse(cfgmod.loads(text), env=env)


# --- config -----------------------------------------------------------------------------


def test_defaults_and_full_config(tmp_path: Path) -> None:
    cfg = parse(
        f"""
[alerts]
cooldown_s = 60
min_confidence = 40
regimes = ["short_squeeze"]

[[sinks]]
type = "console"

[[sinks]]
type = "jsonl"
path = "{tmp_path / "a.jsonl"}"

[[sinks]]
type = "webhook"
name = "hook"
url = "https://example.test/in"
headers = {{ Authorization = "env:AUTH" }}

[[sinks]]
type = "telegram"
token = "env:TG"
chat_id = -100123
""",
        AUTH="Bearer abc",
        TG=TOKEN,
    )
    assert cfg.alerts.cooldown_s == 60
    assert cfg.alerts.min_confidence == 40
    assert cfg.alerts.regimes == ("SHORT_SQUEEZE",)
    assert [s.type for s in cfg.sinks] == [
        SinkType.CONSOLE,
        SinkType.JSONL,
        SinkType.WEBHOOK,
        SinkType.TELEGRAM,
    ]
    assert [s.name for s in cfg.sinks] == ["console-1", "jsonl-2", "hook", "telegram-4"]
    assert cfg.sinks[1].path == tmp_path / "a.jsonl"
    assert cfg.sinks[2].headers == (("Authorization", Secret("Bearer abc")),)
    telegram = cfg.sinks[3]
    assert telegram.token is not None and telegram.token.reveal() == TOKEN
    assert telegram.chat_id == "-100123"
    assert telegram.api_base == "https://api.telegram.org"
    assert TOKEN not in repr(cfg)
    defaults = parse("")
    assert defaults.alerts.cooldown_s == 900
    assert defaults.alerts.min_confidence == 0
    assert defaults.alerts.regimes == ("SHORT_COVERING", "SHORT_SQUEEZE")
    assert defaults.sinks == ()


def test_secret_never_shows_itself() -> None:
    s = Secret(TOKEN)
    assert repr(s) == str(s) == f"{s}" == "***"
    assert s.reveal() == TOKEN
    assert TOKEN not in repr(SinkConfig(SinkType.TELEGRAM, "t", token=s, chat_id="1"))


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ('[[sinks]]\ntype = "pager"', {}, "sinks[1].type: unknown sink type 'pager'"),
        ("[[sinks]]\nname = 'x'", {}, "sinks[1].type: missing"),
        ('[[sinks]]\ntype = "telegram"\nchat_id = "1"', {}, "sinks[1].token: missing"),
        ('[[sinks]]\ntype = "jsonl"', {}, "sinks[1].path: missing"),
        ('[[sinks]]\ntype = "slack"\nwebhook_url = "ftp://h/x"', {}, "sinks[1].webhook_url"),
        ('[[sinks]]\ntype = "webhook"\nurl = "not a url"', {}, "sinks[1].url: expected an http"),
        (
            '[[sinks]]\ntype = "discord"\nwebhook_url = "env:NOPE"',
            {},
            "environment variable NOPE is not set",
        ),
        ('[[sinks]]\ntype = "console"\ncolour = 1', {}, "sinks[1].colour: unknown key"),
        ("[alerts]\ncooldown_s = -1", {}, "alerts.cooldown_s: expected a number >= 0"),
        ("[alerts]\nregimes = ['MOON']", {}, "alerts.regimes: unknown regime 'MOON'"),
        ("[alerts]\nsnooze = 1", {}, "alerts.snooze: unknown key"),
        ("[alerts]\n", {"OIRADAR_ALERTS_COOLDOWN_S": "soon"}, "OIRADAR_ALERTS_COOLDOWN_S"),
        ("[alerts\n", {}, "not valid TOML"),
    ],
)
def test_config_errors_are_one_line_naming_the_key(
    text: str, env: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text, **env)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_bad_url_is_not_echoed() -> None:
    with pytest.raises(ConfigError) as info:
        parse(f'[[sinks]]\ntype = "webhook"\nurl = "ftp://{TOKEN}"')
    assert TOKEN not in str(info.value)


def test_env_overrides_alerts_keys() -> None:
    cfg = parse(
        "[alerts]\ncooldown_s = 60",
        OIRADAR_ALERTS_COOLDOWN_S="120",
        OIRADAR_ALERTS_REGIMES="short_covering, long_liquidation",
    )
    assert cfg.alerts.cooldown_s == 120
    assert cfg.alerts.regimes == ("SHORT_COVERING", "LONG_LIQUIDATION")


def test_load_named_missing_file_and_oiradar_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="not found"):
        cfgmod.load(tmp_path / "absent.toml")
    path = tmp_path / "c.toml"
    path.write_text("[alerts]\ncooldown_s = 5\n")
    monkeypatch.setenv("OIRADAR_CONFIG", str(path))
    loaded = cfgmod.load()
    assert loaded.alerts.cooldown_s == 5
    assert loaded.source == path


def test_config_init_writes_a_file_that_parses(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "config.toml"
    first = run_cli("config", "init", "--path", str(path))
    assert first.code == 0, first.err
    cfg = cfgmod.load(path)
    assert [s.type for s in cfg.sinks] == [SinkType.CONSOLE]
    assert cfg.alerts.cooldown_s == 900
    again = run_cli("config", "init", "--path", str(path))
    assert again.code == 2
    assert again.err.count("\n") == 1 and "--force" in again.err
    assert run_cli("config", "init", "--path", str(path), "--force").code == 0


# --- the alert ----------------------------------------------------------------------------


def test_alert_dict_and_sentence() -> None:
    a = sample_alert(TS)
    d = a.to_dict()
    json.dumps(d)
    assert d["ts"] == "2026-05-28T20:26:40Z"
    assert d["window"] == "15m"
    assert d["more_to_come"] is True
    assert d["liq_feeds"] == {"bybit": "complete", "binance": "sampled", "hyperliquid": "none"}
    assert d["drivers"] == ["binance", "bybit"]
    s = a.sentence()
    assert s.startswith("SOLUSDT: shorts are being squeezed")
    assert "OI -3.3 % in 15m while price +2.2 %" in s
    assert "$554k of shorts liquidated (bybit complete, binance sampled)" in s
    assert s.endswith("funding still negative: more to come")
    calm = replace(a, funding_rate=0.0001, kind=AlertKind.EXHAUSTION)
    assert "more to come" not in calm.sentence()
    assert "running out of steam" in calm.sentence()


# --- sinks --------------------------------------------------------------------------------


def sink_cfg(kind: SinkType, name: str, **kw: Any) -> SinkConfig:
    return SinkConfig(kind, name, **kw)


async def test_http_sinks_post_what_each_service_expects(receiver: Receiver) -> None:
    base = receiver.base
    sinks = [
        build_sink(
            sink_cfg(
                SinkType.WEBHOOK,
                "hook",
                url=Secret(f"{base}/hook"),
                headers=(("X-Key", Secret("k")),),
            )
        ),
        build_sink(
            sink_cfg(SinkType.TELEGRAM, "tg", token=Secret(TOKEN), chat_id="-42", api_base=base)
        ),
        build_sink(sink_cfg(SinkType.DISCORD, "dc", webhook_url=Secret(f"{base}/discord"))),
        build_sink(sink_cfg(SinkType.SLACK, "sl", webhook_url=Secret(f"{base}/slack"))),
    ]
    a = sample_alert(TS)
    try:
        for sink in sinks:
            await sink.send(a)
    finally:
        for sink in sinks:
            await sink.close()
    assert receiver.bodies("/hook") == [json.loads(json.dumps(a.to_dict()))]
    [tg] = receiver.bodies(f"/bot{TOKEN}/sendMessage")
    assert tg["chat_id"] == "-42"
    assert tg["text"].startswith(a.sentence())
    assert "confidence 78" in tg["text"]
    [dc] = receiver.bodies("/discord")
    assert dc == {"content": tg["text"]}
    [sl] = receiver.bodies("/slack")
    assert sl == {"text": tg["text"]}


async def test_jsonl_sink_appends_lines(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "alerts.jsonl"
    sink = build_sink(sink_cfg(SinkType.JSONL, "file", path=path))
    await sink.send(alert("SHORT_COVERING"))
    await sink.send(alert("SHORT_SQUEEZE", AlertKind.ESCALATION))
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["regime"] for r in rows] == ["SHORT_COVERING", "SHORT_SQUEEZE"]
    assert rows[1]["kind"] == "escalation"


async def test_failing_sink_is_retried_and_submit_returns_at_once(receiver: Receiver) -> None:
    receiver.plan["/flaky"] = [500, 500]
    done: list[Delivery] = []
    sink = build_sink(sink_cfg(SinkType.WEBHOOK, "flaky", url=Secret(f"{receiver.base}/flaky")))
    async with Dispatcher([sink], backoff_s=0.001, on_delivery=done.append) as dispatcher:
        dispatcher.submit(alert())
        assert receiver.requests == []  # submit did not wait for the network
        await asyncio.wait_for(dispatcher.flush(), WAIT_S)
    assert len(receiver.bodies("/flaky")) == 3
    [delivery] = done
    assert delivery.ok and delivery.attempts == 3


async def test_a_dead_or_slow_sink_does_not_block_the_others(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.always["/dead"] = 503
    receiver.gate = asyncio.Event()
    done: list[Delivery] = []
    sinks = [
        build_sink(sink_cfg(SinkType.WEBHOOK, "dead", url=Secret(f"{receiver.base}/dead"))),
        build_sink(sink_cfg(SinkType.WEBHOOK, "slow", url=Secret(f"{receiver.base}/slow"))),
        build_sink(sink_cfg(SinkType.WEBHOOK, "good", url=Secret(f"{receiver.base}/good"))),
    ]
    caplog.set_level(logging.INFO)
    dispatcher = Dispatcher(sinks, max_attempts=3, backoff_s=0.001, on_delivery=done.append)
    try:
        for i in range(3):
            dispatcher.submit(alert(ts_ms=TS + i))
        await receiver.wait_for(lambda: len(receiver.bodies("/good")) == 3)
        assert receiver.bodies("/slow") and len(receiver.bodies("/slow")) == 1  # still stuck
        await receiver.wait_for(lambda: len(receiver.bodies("/dead")) == 9)
        receiver.gate.set()
        await asyncio.wait_for(dispatcher.flush(), WAIT_S)
    finally:
        receiver.gate.set()
        await dispatcher.close(timeout_s=WAIT_S)
    by_sink = {name: [d for d in done if d.sink == name] for name in ("dead", "slow", "good")}
    assert all(d.ok for d in by_sink["good"]) and len(by_sink["good"]) == 3
    assert all(d.ok for d in by_sink["slow"]) and len(by_sink["slow"]) == 3
    assert [d.attempts for d in by_sink["dead"]] == [3, 3, 3]
    assert all(d.error and "HTTP 503" in d.error for d in by_sink["dead"])
    assert "sink=dead event=send_gave_up" in caplog.text
    assert "/dead" not in caplog.text  # the webhook URL (the credential) is never logged


async def test_a_webhook_takes_alerts_in_parallel_each_symbol_in_order(receiver: Receiver) -> None:
    """Fifty alerts of one close must not queue one round trip behind another (the bar close
    -> sink latency), yet one symbol's alerts (new, then escalation) never overtake."""
    receiver.gate = asyncio.Event()
    done: list[Delivery] = []
    sink = build_sink(sink_cfg(SinkType.WEBHOOK, "w", url=Secret(f"{receiver.base}/slow")))
    dispatcher = Dispatcher([sink], backoff_s=0.001, on_delivery=done.append)
    symbols = [f"X{i}USDT" for i in range(12)]
    try:
        dispatcher.submit(alert(symbol="SOLUSDT", ts_ms=TS))
        dispatcher.submit(alert("SHORT_SQUEEZE", AlertKind.ESCALATION, TS + 1, "SOLUSDT"))
        for sym in symbols:
            dispatcher.submit(alert(symbol=sym))
        # Held by the receiver, yet more than one is in flight.
        await receiver.wait_for(lambda: len(receiver.bodies("/slow")) >= 3)
        await asyncio.sleep(0.2)
        held = receiver.bodies("/slow")
        assert 3 <= len(held) <= getattr(sink, "lanes", 1)
        assert [b["ts"] for b in held if b["symbol"] == "SOLUSDT"] == [held[0]["ts"]]
        receiver.gate.set()
        await asyncio.wait_for(dispatcher.flush(), WAIT_S)
    finally:
        receiver.gate.set()
        await dispatcher.close(timeout_s=WAIT_S)
    got = receiver.bodies("/slow")
    assert sorted(b["symbol"] for b in got) == sorted(["SOLUSDT"] * 2 + symbols)
    assert [b["kind"] for b in got if b["symbol"] == "SOLUSDT"] == ["new", "escalation"]
    assert len(done) == 14 and all(d.ok for d in done)


async def test_client_errors_are_not_retried(receiver: Receiver) -> None:
    receiver.always["/gone"] = 404
    done: list[Delivery] = []
    sink = build_sink(sink_cfg(SinkType.SLACK, "gone", webhook_url=Secret(f"{receiver.base}/gone")))
    async with Dispatcher([sink], backoff_s=0.001, on_delivery=done.append) as dispatcher:
        dispatcher.submit(alert())
    [delivery] = done
    assert delivery.attempts == 1 and delivery.error is not None and "404" in delivery.error


async def test_a_webhook_query_key_echoed_by_the_server_is_scrubbed(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.always["/hook"] = 400
    done: list[Delivery] = []
    url = f"{receiver.base}/hook?key=QUERYSECRET42&team=ops%2Fsre"
    sink = build_sink(sink_cfg(SinkType.WEBHOOK, "hook", url=Secret(url)))
    caplog.set_level(logging.INFO)
    async with Dispatcher([sink], backoff_s=0.001, on_delivery=done.append) as dispatcher:
        dispatcher.submit(alert())
    [delivery] = done
    assert delivery.error is not None and "HTTP 400 bad request" in delivery.error
    for text in (delivery.error, caplog.text):
        assert "QUERYSECRET" not in text and "ops/sre" not in text and "ops%2Fsre" not in text


async def test_a_secret_across_the_body_cut_is_scrubbed_whole(receiver: Receiver) -> None:
    done: list[Delivery] = []
    header = ("Authorization", Secret("Bearer HEADERSECRET-0123456789"))
    url = Secret(f"{receiver.base}/echo-auth")
    sink = build_sink(sink_cfg(SinkType.WEBHOOK, "hook", url=url, headers=(header,)))
    async with Dispatcher([sink], backoff_s=0.001, on_delivery=done.append) as dispatcher:
        dispatcher.submit(alert())
    [delivery] = done
    assert delivery.error is not None and "x" * 150 + "***" in delivery.error
    assert "Bearer" not in delivery.error and "HEA" not in delivery.error


# --- the gate -----------------------------------------------------------------------------


def test_gate_suppresses_duplicates_within_cooldown() -> None:
    gate = Gate(cooldown_s=900)
    assert gate.admit(alert("SHORT_COVERING", ts_ms=TS))
    assert not gate.admit(alert("SHORT_COVERING", ts_ms=TS + 60_000))
    assert gate.admit(alert("SHORT_COVERING", ts_ms=TS + 60_000, symbol="BTCUSDT"))
    assert gate.admit(alert("SHORT_COVERING", ts_ms=TS + 900_000))


def test_gate_lets_escalation_and_exhaustion_through() -> None:
    gate = Gate(cooldown_s=900)
    assert gate.admit(alert("SHORT_COVERING", ts_ms=TS))
    assert gate.admit(alert("SHORT_SQUEEZE", ts_ms=TS + 60_000))  # covering -> squeeze
    assert not gate.admit(alert("SHORT_SQUEEZE", ts_ms=TS + 120_000))
    assert not gate.admit(alert("SHORT_COVERING", ts_ms=TS + 180_000))  # a step down
    assert gate.admit(alert("SHORT_SQUEEZE", AlertKind.EXHAUSTION, ts_ms=TS + 240_000))
    assert gate.admit(alert("SHORT_COVERING", ts_ms=TS + 300_000))  # a new episode


def test_gate_filters_regime_and_confidence() -> None:
    gate = Gate(min_confidence=50, regimes=["SHORT_COVERING"])
    assert not gate.admit(alert("NEW_LONGS"))
    assert not gate.admit(alert("SHORT_COVERING", confidence=40))
    assert gate.admit(alert("SHORT_COVERING", confidence=60))


# --- the CLI ------------------------------------------------------------------------------


def write_config(tmp_path: Path, receiver: Receiver, extra: str = "", query: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[alerts]
backoff_s = 0.001
max_attempts = 2

[[sinks]]
type = "jsonl"
name = "file"
path = "{tmp_path / "alerts.jsonl"}"

[[sinks]]
type = "webhook"
name = "hook"
url = "{receiver.base}/hook{query}"
{extra}
"""
    )
    return path


async def run_cli_off_loop(*args: str) -> Any:
    """The CLI runs its own event loop; keep ours (serving the receiver) free meanwhile."""
    return await asyncio.to_thread(run_cli, *args)


async def test_alerts_test_reports_each_sink(receiver: Receiver, tmp_path: Path) -> None:
    path = write_config(tmp_path, receiver)
    result = await run_cli_off_loop("alerts", "test", "--config", str(path))
    assert result.code == 0, result.err
    assert "file (jsonl): ok" in result.out
    assert "hook (webhook): ok" in result.out
    [body] = receiver.bodies("/hook")
    assert body["symbol"] == "SOLUSDT" and body["regime"] == "SHORT_SQUEEZE"
    assert json.loads((tmp_path / "alerts.jsonl").read_text())["symbol"] == "SOLUSDT"


async def test_alerts_test_never_shows_a_secret(
    receiver: Receiver,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver.always[f"/bot{TOKEN}/sendMessage"] = 401
    receiver.always["/hook"] = 500
    extra = f"""
[[sinks]]
type = "telegram"
name = "tg"
token = "{TOKEN}"
chat_id = "-1"
api_base = "{receiver.base}"
"""
    path = write_config(tmp_path, receiver, extra)
    caplog.set_level(logging.DEBUG)
    result = await run_cli_off_loop("alerts", "test", "--config", str(path))
    assert result.code == 1
    assert "file (jsonl): ok" in result.out
    assert "hook (webhook): failed: http://127.0.0.1" in result.out
    assert "tg (telegram): failed:" in result.out and "HTTP 401" in result.out
    assert len(receiver.bodies(f"/bot{TOKEN}/sendMessage")) == 1  # 401: not retried
    assert len(receiver.bodies("/hook")) == 2
    assert "send_gave_up" in caplog.text
    for text in (result.out, result.err, caplog.text):
        assert TOKEN not in text
        assert "SECRET" not in text


async def test_alerts_test_never_shows_a_query_key_the_server_echoes(
    receiver: Receiver, tmp_path: Path
) -> None:
    receiver.always["/hook"] = 400
    path = write_config(tmp_path, receiver, query="?key=QUERYSECRET42")
    result = await run_cli_off_loop("alerts", "test", "--config", str(path))
    assert result.code == 1
    assert "hook (webhook): failed:" in result.out and "HTTP 400 bad request" in result.out
    assert "QUERYSECRET" not in result.out + result.err


def test_alerts_test_without_sinks_is_a_user_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.toml"
    path.write_text("[alerts]\n")
    result = run_cli("alerts", "test", "--config", str(path))
    assert result.code == 2
    assert "no [[sinks]]" in result.err


def test_config_check_names_the_bad_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[sinks]]\ntype = "telegram"\ntoken = "t"\n')
    result = run_cli("config", "check", "--config", str(path))
    assert result.code == 2
    assert (
        result.err == "oiradar: error: sinks[1].chat_id: missing; expected a chat id like "
        "-1001234567890 or @channel\n"
    )


def test_config_check_shows_where_each_sink_delivers_secrets_as_stars(tmp_path: Path) -> None:
    """`config check` names each sink's destination, so "secrets print as ***" is visible
    (issue #12, item 14)."""
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[[sinks]]
type = "jsonl"
path = "{tmp_path / "alerts.jsonl"}"

[[sinks]]
type = "webhook"
name = "ops"
url = "https://hooks.example.com/services/SECRET-path"
headers = {{ Authorization = "Bearer SECRET-header" }}

[[sinks]]
type = "telegram"
token = "{TOKEN}"
chat_id = "-1001234567890"
"""
    )
    result = run_cli("config", "check", "--config", str(path))
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert f"sink jsonl-1 (jsonl): {tmp_path / 'alerts.jsonl'}" in lines
    assert "sink ops (webhook): https://hooks.example.com/*** (headers Authorization: ***)" in lines
    assert (
        "sink telegram-3 (telegram): https://api.telegram.org/bot***/sendMessage "
        "chat_id=-1001234567890"
    ) in lines
    assert TOKEN not in result.out and "SECRET" not in result.out
