"""Persistence behind one interface: `Store` (SQLite today)."""

from oiradar.store.sqlite import Store, default_db_path

__all__ = ["Store", "default_db_path"]
