"""CLI commands, one module per group; importing this package registers them on `cli.app`."""

from oiradar.commands import analysis, data, scan, sim

__all__ = ["analysis", "data", "scan", "sim"]
