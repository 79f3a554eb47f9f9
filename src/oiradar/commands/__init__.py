"""CLI commands, one module per group, over `commands.app`; `oiradar.cli` imports them."""
