"""Persistence behind one interface: the `Store` protocol and `open_store` (SQLite today)."""

from oiradar.store.backends import location_of, open_store
from oiradar.store.base import Episode, Heartbeat, LoggedAlert, Span, Store, WatchState
from oiradar.store.sqlite import default_db_path

__all__ = [
    "Episode",
    "Heartbeat",
    "LoggedAlert",
    "Span",
    "Store",
    "WatchState",
    "default_db_path",
    "location_of",
    "open_store",
]
