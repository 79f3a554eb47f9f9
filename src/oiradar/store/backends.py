"""Which backend serves a store path or URL: the one module that imports the backends.

Kept apart from `store/base.py` so the seam never imports an implementation (backends
import the seam, never the other way round).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from oiradar.errors import UserError
from oiradar.store.base import ENV_DB, Store, redacted
from oiradar.store.sqlite import SqliteStore, default_db_path

Opener = Callable[[str, bool], Store]


def _sqlite(url: str, readonly: bool) -> Store:
    return SqliteStore(sqlite_path(url), readonly=readonly)


def _postgres(url: str, readonly: bool) -> Store:
    try:
        from oiradar.store.postgres import open_postgres
    except ImportError:
        raise UserError(
            "a postgresql:// store needs psycopg: pip install 'oiradar[postgres]'"
        ) from None
    return open_postgres(url, readonly)


BACKENDS: dict[str, Opener] = {"sqlite": _sqlite, "postgresql": _postgres, "postgres": _postgres}
"""URL scheme -> opener (url, readonly): a new backend adds its line here."""


def url_scheme(target: str | Path) -> str | None:
    """The scheme of a store URL ("sqlite" of sqlite:///x.db); None for a plain file path."""
    if isinstance(target, Path):
        return None
    scheme, sep, _ = target.partition("://")
    # One letter is a Windows drive (C://x), not a scheme.
    return scheme.lower() if sep and len(scheme) > 1 and scheme.isalpha() else None


def sqlite_path(url: str) -> Path:
    """The file of a `sqlite:///PATH` URL (SQLAlchemy's form: sqlite:////abs/path.db)."""
    rest = url.partition("://")[2]
    if not rest.startswith("/") or rest == "/":
        raise UserError(f"store URL {url!r} has no file: use sqlite:///PATH")
    return Path(rest[1:])


def default_target() -> str | Path:
    """`$OIRADAR_DB` (a path or a URL), else the SQLite file in the user-data directory."""
    env = os.environ.get(ENV_DB)
    if env and url_scheme(env) is not None:
        return env
    return default_db_path()


def location_of(target: str | Path | None) -> str:
    """Where `open_store(target)` would look, without opening anything (for messages)."""
    target = default_target() if target is None else target
    if url_scheme(target) == "sqlite":
        return str(sqlite_path(str(target)))
    if url_scheme(target) is not None:
        return redacted(str(target))  # a URL may carry a password: never shown
    return str(target)


def open_store(target: str | Path | None = None, *, readonly: bool = False) -> Store:
    """The store at a file path or URL (None: `default_target()`); `readonly` never writes
    and refuses a store that does not exist yet (`NoDataError`)."""
    target = default_target() if target is None else target
    scheme = url_scheme(target)
    if scheme is None:
        return SqliteStore(Path(target), readonly=readonly)
    opener = BACKENDS.get(scheme)
    if opener is None:
        known = ", ".join(f"{s}://" for s in BACKENDS)
        raise UserError(f"no store backend for {scheme}:// URLs: use a file path or {known}")
    return opener(str(target), readonly)
