"""Getting alerts out: a `Gate` that decides what is news, a `Dispatcher` that delivers it.

Each sink has its own queues and worker tasks, so a slow or failing sink delays only itself;
`submit` never waits. A sink that takes requests in parallel (a webhook: `lanes` > 1) gets
that many workers, each symbol always on the same one: a close that raises fifty alerts is
not delivered one round trip after another, and one symbol's alerts still arrive in order.
Failures are retried by the one backoff rule (`oiradar.backoff`), never sooner than a 429's
`Retry-After`, then logged and dropped.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from oiradar.backoff import Backoff
from oiradar.services.alerts.model import Alert, AlertKind
from oiradar.services.alerts.sinks import Sink, SinkError
from oiradar.signals.regimes import COVERING, Regime

log = logging.getLogger(__name__)

# (from, to) regime pairs that are an escalation: always news, cooldown or not.
ESCALATIONS = frozenset({(Regime.SHORT_COVERING, Regime.SHORT_SQUEEZE)})


@dataclass(frozen=True, slots=True)
class Delivery:
    """What became of one alert at one sink; `error` is None when it arrived."""

    sink: str
    alert: Alert
    attempts: int
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(slots=True)
class _Last:
    regime: Regime
    ts_ms: int


class Gate:
    """Per-symbol de-duplication: the same regime again within `cooldown_s` is suppressed.

    Escalations (covering -> squeeze) and exhaustion alerts always pass; a weaker regime
    within the cooldown of a stronger one (squeeze -> covering) is the same episode and is
    suppressed too. Time comes from the alerts (`ts_ms`), never from the wall clock.
    """

    def __init__(
        self,
        cooldown_s: float = 900.0,
        min_confidence: float = 0.0,
        regimes: Sequence[Regime | str] = COVERING,
    ) -> None:
        """`regimes` as members or their names (as the config file spells them)."""
        self.cooldown_ms = int(cooldown_s * 1000)
        self.min_confidence = min_confidence
        self.regimes = frozenset(r if isinstance(r, Regime) else Regime[r] for r in regimes)
        self._last: dict[str, _Last] = {}

    def remember(self, symbol: str, regime: Regime, ts_ms: int) -> None:
        """An alert sent before a restart, so the same episode is not announced again."""
        self._last[symbol] = _Last(regime, ts_ms)

    def admit(self, alert: Alert) -> bool:
        """True when `alert` should be sent; remembers it if so."""
        last = self._last.get(alert.symbol)
        if alert.kind is AlertKind.EXHAUSTION:
            # The episode is over: the next covering for this symbol is news again.
            self._last.pop(alert.symbol, None)
            return True
        escalation = alert.kind is AlertKind.ESCALATION or (
            last is not None and (last.regime, alert.regime) in ESCALATIONS
        )
        if not escalation:
            if alert.regime not in self.regimes or alert.confidence < self.min_confidence:
                return False
            if last is not None and self._same_episode(last, alert):
                return False
        self._last[alert.symbol] = _Last(alert.regime, alert.ts_ms)
        return True

    def _same_episode(self, last: _Last, alert: Alert) -> bool:
        """Within the cooldown, the same regime or a step down from a squeeze is no news."""
        if alert.ts_ms - last.ts_ms >= self.cooldown_ms:
            return False
        return last.regime == alert.regime or (alert.regime, last.regime) in ESCALATIONS


class Dispatcher:
    """Fan alerts out to every sink through per-sink queues; use as `async with`."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        max_attempts: int = 4,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        queue_size: int = 1000,
        on_delivery: Callable[[Delivery], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.sinks = tuple(sinks)
        self.max_attempts = max(1, max_attempts)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.on_delivery = on_delivery
        self._sleep = sleep
        self._lanes = [
            [asyncio.Queue[Alert](queue_size) for _ in range(max(1, getattr(sink, "lanes", 1)))]
            for sink in self.sinks
        ]
        self._workers: list[asyncio.Task[None]] = []

    @property
    def _queues(self) -> list[asyncio.Queue[Alert]]:
        return [q for lanes in self._lanes for q in lanes]

    async def __aenter__(self) -> Dispatcher:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start(self) -> None:
        if not self._workers:
            self._workers = [
                asyncio.create_task(self._work(sink, queue), name=f"sink:{sink.name}:{k}")
                for sink, lanes in zip(self.sinks, self._lanes, strict=True)
                for k, queue in enumerate(lanes)
            ]

    def submit(self, alert: Alert) -> None:
        """Queue `alert` for every sink and return at once; a full queue drops it (logged)."""
        self.start()
        lane = zlib.crc32(alert.symbol.encode())
        for sink, lanes in zip(self.sinks, self._lanes, strict=True):
            queue = lanes[lane % len(lanes)]
            try:
                queue.put_nowait(alert)
            except asyncio.QueueFull:
                log.warning("sink=%s event=queue_full symbol=%s dropped=1", sink.name, alert.symbol)
                self._report(Delivery(sink.name, alert, 0, "queue full"))

    async def flush(self) -> None:
        """Wait until every queued alert was delivered or given up on."""
        await asyncio.gather(*(q.join() for q in self._queues))

    async def close(self, timeout_s: float | None = None) -> None:
        """Drain (up to `timeout_s`), stop the workers and close the sinks."""
        try:
            await asyncio.wait_for(self.flush(), timeout_s)
        except TimeoutError:
            log.warning(
                "event=alerts_close_timeout pending=%d", sum(q.qsize() for q in self._queues)
            )
        finally:
            for task in self._workers:
                task.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)
            self._workers = []
            for sink in self.sinks:
                await sink.close()

    def _report(self, delivery: Delivery) -> None:
        if self.on_delivery is not None:
            self.on_delivery(delivery)

    async def _work(self, sink: Sink, queue: asyncio.Queue[Alert]) -> None:
        while True:
            alert = await queue.get()
            try:
                self._report(await self._deliver(sink, alert))
            finally:
                queue.task_done()

    async def _deliver(self, sink: Sink, alert: Alert) -> Delivery:
        backoff = Backoff(self.backoff_s, self.max_backoff_s)
        for attempt in range(1, self.max_attempts + 1):
            asked: float | None = None
            try:
                await sink.send(alert)
            except SinkError as exc:
                error, retryable, asked = str(exc), exc.retryable, exc.retry_after_s
            except Exception as exc:  # a sink bug must not kill its worker
                # Only the type: an unexpected message could carry a secret.
                error, retryable = f"unexpected {type(exc).__name__}", True
            else:
                if attempt > 1:
                    log.info("sink=%s event=delivered attempt=%d", sink.name, attempt)
                return Delivery(sink.name, alert, attempt, None)
            last = attempt == self.max_attempts or not retryable
            log.warning(
                "sink=%s event=%s symbol=%s attempt=%d/%d error=%s",
                sink.name,
                "send_gave_up" if last else "send_failed",
                alert.symbol,
                attempt,
                self.max_attempts,
                error,
            )
            if last:
                return Delivery(sink.name, alert, attempt, error)
            await self._sleep(backoff.delay(attempt - 1, asked))
        raise AssertionError("unreachable")
