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


class VenueError(OiradarError):
    """Something went wrong talking to an exchange (`venue` names which)."""

    exit_code = 4

    def __init__(self, venue: str, message: str) -> None:
        super().__init__(f"{venue}: {message}")
        self.venue = venue


class VenueUnavailable(VenueError):
    """5xx, timeout, reset, maintenance page or a garbled body: retry with backoff, no
    sooner than `retry_after_s` when the venue said (a 503 with `Retry-After`)."""

    def __init__(self, venue: str, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(venue, message)
        self.retry_after_s = retry_after_s


class RateLimited(VenueError):
    """The venue said slow down: wait `retry_after_s` before the next request."""

    def __init__(self, venue: str, message: str, retry_after_s: float) -> None:
        super().__init__(venue, message)
        self.retry_after_s = retry_after_s


class Banned(VenueError):
    """The venue banned this IP: stop every request to it for `seconds`."""

    def __init__(self, venue: str, message: str, seconds: float) -> None:
        super().__init__(venue, message)
        self.seconds = seconds


class UnknownSymbol(VenueError):
    """The venue does not list this symbol: warn and carry on with the others."""


class VenueProtocolError(VenueError):
    """The payload is not what the venue documents: never retried, logged loudly."""
