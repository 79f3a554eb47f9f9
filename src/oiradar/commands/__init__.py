"""CLI commands, one module per group; importing this package registers them on `cli.app`."""

from oiradar.commands import analysis, data, sim

__all__ = ["analysis", "data", "sim"]
