"""Gate USDT perpetuals (APIv4, settle `usdt`): `wire` (tables, error labels, pure parsers),
`rest` (the REST client and its limits), `ws` (the public stream). Exports what code outside
`venues/` uses."""

from oiradar.venues.gate.rest import GateClient
from oiradar.venues.gate.wire import CANDLE_INTERVALS, STATS_INTERVALS
from oiradar.venues.gate.ws import GateStream

__all__ = ["CANDLE_INTERVALS", "STATS_INTERVALS", "GateClient", "GateStream"]
