"""Where alerts go: one small class per destination, each with one async `send(alert)`.

A sink raises `SinkError` with a message that is safe to show: every secret it holds is
scrubbed, and URLs carrying tokens are never echoed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
from rich.console import Console
from rich.text import Text

from oiradar.backoff import retry_after_s
from oiradar.config import SinkConfig, SinkType
from oiradar.services.alerts.model import Alert
from oiradar.signals.regimes import TERMINAL_STYLE

_BODY_CHARS = 160


class SinkError(Exception):
    """Delivery failed; `retryable` is False when trying again cannot help (e.g. HTTP 401);
    `retry_after_s` is how long the service asked us to wait (a 429's `Retry-After`)."""

    def __init__(
        self, message: str, retryable: bool = True, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class Sink(Protocol):
    """Besides these, a sink may say how many alerts it takes at once (`lanes`, default 1:
    one after another)."""

    name: str

    async def send(self, alert: Alert) -> None: ...

    async def close(self) -> None: ...


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret value replaced by `***`."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text


def details(alert: Alert) -> str:
    """The second line of a chat message: the context behind the sentence."""
    parts = [f"confidence {alert.confidence}"]
    if alert.tier:
        parts.append(f"tier {alert.tier}")
    if alert.drivers:
        parts.append(f"OI driven by {', '.join(alert.drivers)}")
    if alert.volume_ratio is not None:
        parts.append(f"volume {alert.volume_ratio:.1f}x normal")
    if alert.funding_rate is not None:
        parts.append(f"funding {alert.funding_rate * 100:+.4f} %")
    parts.append(f"{alert.session} session{' (weekend)' if alert.weekend else ''}")
    return " · ".join(parts)


def message(alert: Alert) -> str:
    return f"{alert.sentence()}\n{details(alert)}"


class ConsoleSink:
    """A styled line on stdout, for a daemon run in a terminal."""

    def __init__(self, config: SinkConfig, console: Console | None = None) -> None:
        self.name = config.name
        self._console = console or Console(highlight=False, soft_wrap=True)

    async def send(self, alert: Alert) -> None:
        line = Text()
        line.append(f"{alert.to_dict()['ts']} ", style="dim")
        line.append(alert.regime.name, style=TERMINAL_STYLE.get(alert.regime, "bold"))
        line.append(f" [{alert.kind.value}] ", style="dim")
        line.append(f"{alert.sentence()}\n  {details(alert)}")
        self._console.print(line)

    async def close(self) -> None:
        return None


class JsonlSink:
    """One JSON object per line, appended; the write runs off the event loop."""

    def __init__(self, config: SinkConfig) -> None:
        assert config.path is not None
        self.name = config.name
        self.path: Path = config.path

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line)

    async def send(self, alert: Alert) -> None:
        line = json.dumps(alert.to_dict(), ensure_ascii=False) + "\n"
        try:
            await asyncio.to_thread(self._append, line)
        except OSError as exc:
            raise SinkError(f"cannot write {self.path}: {exc.strerror}") from None

    async def close(self) -> None:
        return None


class HttpSink:
    """POST a JSON body; subclasses say where and what. One session per sink."""

    def __init__(self, config: SinkConfig, url: str, shown_url: str) -> None:
        self.name = config.name
        self._url = url
        self.shown_url = shown_url
        self._headers = {k: v.reveal() for k, v in config.headers}
        self._secrets = config.secrets()
        self._timeout = aiohttp.ClientTimeout(total=config.timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def body(self, alert: Alert) -> dict[str, Any]:
        raise NotImplementedError

    async def send(self, alert: Alert) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(
                self._url, json=self.body(alert), headers=self._headers
            ) as resp:
                if resp.status < 300:
                    return
                text = await resp.text(errors="replace")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            # aiohttp puts the full URL (token included) into some messages: scrub them.
            reason = scrub(str(exc), self._secrets) or "no detail"
            raise SinkError(f"{self.shown_url}: {type(exc).__name__}: {reason}") from None
        retry = resp.status == 429 or resp.status >= 500
        asked = retry_after_s(resp.headers) if retry else None
        # Scrub the whole body first: cut first, a secret straddling the cut would keep
        # its head (`Bearer HEA…`) where no scrub could find it.
        body = " ".join(scrub(text, self._secrets).split())[:_BODY_CHARS]
        raise SinkError(
            f"{self.shown_url}: HTTP {resp.status} {body}".rstrip(), retry, retry_after_s=asked
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _origin(url: str) -> str:
    """`https://host/***`: enough to know where, never the path that holds the credential."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/***"


class WebhookSink(HttpSink):
    """Generic webhook: the alert's dict as the JSON body. Up to `lanes` POSTs at once (one
    symbol's in order): a receiver of our own takes them in parallel. Chat services keep one
    lane: Telegram allows about one message a second per chat, Discord five per two seconds
    per webhook, Slack one a second."""

    lanes = 4

    def __init__(self, config: SinkConfig) -> None:
        assert config.url is not None
        url = config.url.reveal()
        super().__init__(config, url, _origin(url))

    def body(self, alert: Alert) -> dict[str, Any]:
        return alert.to_dict()


class TelegramSink(HttpSink):
    """Bot API sendMessage: POST {api_base}/bot{token}/sendMessage {chat_id, text}."""

    def __init__(self, config: SinkConfig) -> None:
        assert config.token is not None and config.chat_id is not None
        self.chat_id = config.chat_id
        url = f"{config.api_base}/bot{config.token.reveal()}/sendMessage"
        super().__init__(config, url, f"{config.api_base}/bot***/sendMessage")

    def body(self, alert: Alert) -> dict[str, Any]:
        return {"chat_id": self.chat_id, "text": message(alert)}


class DiscordSink(HttpSink):
    def __init__(self, config: SinkConfig) -> None:
        assert config.webhook_url is not None
        url = config.webhook_url.reveal()
        super().__init__(config, url, _origin(url))

    def body(self, alert: Alert) -> dict[str, Any]:
        return {"content": message(alert)}


class SlackSink(DiscordSink):
    def body(self, alert: Alert) -> dict[str, Any]:
        return {"text": message(alert)}


_BUILDERS: dict[SinkType, Callable[[SinkConfig], Sink]] = {
    SinkType.CONSOLE: ConsoleSink,
    SinkType.JSONL: JsonlSink,
    SinkType.WEBHOOK: WebhookSink,
    SinkType.TELEGRAM: TelegramSink,
    SinkType.DISCORD: DiscordSink,
    SinkType.SLACK: SlackSink,
}


def build_sink(config: SinkConfig) -> Sink:
    return _BUILDERS[config.type](config)


def destination(config: SinkConfig) -> str:
    """Where a sink delivers, as `config check` shows it: secrets (tokens, webhook paths,
    header values) as `***`, the rest as written."""
    if config.type is SinkType.CONSOLE:
        return "stdout"
    if config.type is SinkType.JSONL:
        return str(config.path)
    sink = build_sink(config)
    assert isinstance(sink, HttpSink)
    where = sink.shown_url
    if config.type is SinkType.TELEGRAM:
        where += f" chat_id={config.chat_id}"
    headers = " ".join(f"{k}: ***" for k, _ in config.headers)
    return f"{where} (headers {headers})" if headers else where
