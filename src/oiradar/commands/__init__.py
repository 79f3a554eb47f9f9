"""CLI commands, one module per group; importing this package registers them on `cli.app`."""

from oiradar.commands import alerts, analysis, backtest, data, scan, sim, watch

__all__ = ["alerts", "analysis", "backtest", "data", "scan", "sim", "watch"]
