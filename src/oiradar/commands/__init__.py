"""CLI commands, one module per group; importing this package registers them on `cli.app`."""

from oiradar.commands import alerts, analysis, backtest, data, scan, serve, sim, watch
from oiradar.commands import backfill as backfill  # `oiradar backfill` (REST + Binance archive)
from oiradar.commands import chart as chart  # `oiradar chart` (matplotlib/plotly load lazily)
from oiradar.commands import evaluate as evaluate  # `oiradar evaluate` (labelled episodes)
from oiradar.commands import report as report  # `oiradar report` (a backtest as HTML)

__all__ = ["alerts", "analysis", "backtest", "data", "scan", "serve", "sim", "watch"]
