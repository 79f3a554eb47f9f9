"""One small error hierarchy, named for what the caller should do.

The CLI turns every `OiradarError` into one line on stderr and the class's exit code;
anything else is a bug and keeps its traceback (shown with `--debug`).
"""

from __future__ import annotations


class OiradarError(Exception):
    """Base of every error oiradar raises on purpose."""

    exit_code = 1


class UserError(OiradarError):
    """Bad input from the user (arguments, files, ranges): fix the input and run again."""

    exit_code = 2


class ConfigError(UserError):
    """A config key or environment variable has the wrong form."""


class DataError(UserError):
    """A data file is malformed; the message names the file and line."""


class NoDataError(UserError):
    """The store holds nothing for the requested symbol or range."""


class StoreError(OiradarError):
    """The store cannot be opened, migrated or written."""

    exit_code = 3
