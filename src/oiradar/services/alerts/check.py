"""`oiradar alerts test`: one sample alert through every configured sink, retried as the
daemon would retry it, so a user learns a webhook is wrong before the first squeeze."""

from __future__ import annotations

from oiradar.config import Config
from oiradar.services.alerts.dispatch import Delivery, Dispatcher
from oiradar.services.alerts.model import sample_alert
from oiradar.services.alerts.sinks import build_sink


async def check_sinks(cfg: Config, now_ms: int) -> dict[str, Delivery]:
    """Sink name -> what became of the sample alert there (a sink missing never answered)."""
    results: dict[str, Delivery] = {}
    async with Dispatcher(
        [build_sink(s) for s in cfg.sinks],
        max_attempts=cfg.alerts.max_attempts,
        backoff_s=cfg.alerts.backoff_s,
        on_delivery=lambda d: results.__setitem__(d.sink, d),
    ) as dispatcher:
        dispatcher.submit(sample_alert(now_ms))
    return results
