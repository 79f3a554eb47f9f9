"""Where oiradar keeps what it can always rebuild: downloaded archive files, and the rate-limit
budget its processes spent lately (`venues.usage`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import platformdirs

ENV_CACHE = "OIRADAR_CACHE_DIR"


def cache_root(env: Mapping[str, str]) -> Path:
    """`$OIRADAR_CACHE_DIR`, else oiradar's folder in the platform's user-cache directory."""
    root = env.get(ENV_CACHE) or platformdirs.user_cache_dir("oiradar", appauthor=False)
    return Path(root).expanduser()
