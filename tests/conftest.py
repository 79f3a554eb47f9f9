"""Shared fixtures: a fresh store per test, the CLI runner and the real data in ../shared."""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

from oiradar.cli import main
from oiradar.store import Store, open_store
from tests.pgkit import PgServer, start_server

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
REAL = SHARED / "data" / "real"
DERIVED = REAL / "derived"
METRICS = REAL / "binance-vision-metrics-btc-2023-11-12"


def _need_shared(folder: Path = DERIVED) -> Path:
    """../shared is there in CI and here; a user's own clone may lack it."""
    if folder.is_dir():
        return folder
    reason = f"real data not found at {folder} (it sits beside the repository in CI)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One real PostgreSQL server for the whole session (tests/pgkit.py)."""
    try:
        server = start_server()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        reason = f"PostgreSQL cannot be started here: {exc}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A fresh empty PostgreSQL database for one test (its URL carries the password)."""
    return pg_server.new_database()


@pytest.fixture(scope="session")
def derived() -> Path:
    return _need_shared()


@pytest.fixture(scope="session")
def real_metrics() -> Path:
    """Binance archive `metrics` files of BTCUSDT, 26 days (its README lists them)."""
    return _need_shared(METRICS)


@pytest.fixture(scope="session")
def labelled_stores(tmp_path_factory: pytest.TempPathFactory, derived: Path) -> dict[str, Path]:
    """Each labelled real data set imported into its own store, as a user would."""
    from oiradar.services.importer import import_paths

    sets = {
        "binance-vision-metrics-btc-2023-11-12": METRICS,
        "coinalyze-binance-perp-1h": DERIVED / "coinalyze-binance-perp-1h",
        "coinalyze-binance-perp-5m": DERIVED / "coinalyze-binance-perp-5m",
    }
    out = {}
    for name, folder in sets.items():
        path = tmp_path_factory.mktemp(name) / "store.sqlite"
        with open_store(path) as s:
            report = import_paths(s, [folder])
        assert report.ok, report.rejected
        out[name] = path
    return out


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store.sqlite"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    with open_store(db_path) as s:
        yield s


@pytest.fixture(scope="session")
def real_db(tmp_path_factory: pytest.TempPathFactory, derived: Path) -> Path:
    """One store with all of ../shared/data/real/derived imported (read-only use)."""
    from oiradar.services.importer import import_paths

    path = tmp_path_factory.mktemp("real") / "real.sqlite"
    with open_store(path) as s:
        report = import_paths(s, [derived])
    assert report.ok, report.rejected
    return path


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_cli(*args: str) -> Result:
    """Run `oiradar ARGS` in-process and capture what a user would see."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def cli() -> type[Result] | object:
    return run_cli


@pytest.fixture
async def sim() -> object:
    """An in-process simulator (all four venues, 5 symbols, frozen clock) on a random port."""
    from oiradar.sim.server import SimConfig, SimServer

    async with SimServer(SimConfig(symbols=5, speed=0.0), wall_now_ms=1_780_000_000_000) as s:
        yield s


@pytest.fixture(scope="session", autouse=True)
def _a_cache_of_the_sessions_own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Never the user's cache: the rate-limit budget other processes spent
    (venues/usage.py) is kept there per endpoint, and two simulators of a session may get
    the same port. Module fixtures see this one; each test gets its own (below)."""
    before = os.environ.get("OIRADAR_CACHE_DIR")
    os.environ["OIRADAR_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if before is None:
        del os.environ["OIRADAR_CACHE_DIR"]
    else:
        os.environ["OIRADAR_CACHE_DIR"] = before


@pytest.fixture(autouse=True)
def _never_the_real_exchanges(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A test that forgets its endpoint hits a closed loopback port, never a venue's host;
    its cache is its own."""
    monkeypatch.setenv("OIRADAR_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OIRADAR_CACHE_DIR", str(tmp_path / "cache"))
    for venue in ("BINANCE", "BYBIT", "OKX", "BITGET", "GATE", "HYPERLIQUID", "DYDX"):
        monkeypatch.delenv(f"OIRADAR_{venue}_REST", raising=False)
        monkeypatch.delenv(f"OIRADAR_{venue}_WS", raising=False)


# The suite runs on two workers (pytest-xdist, `--dist loadgroup` in pyproject.toml). Tests
# that run the simulator and a daemon side by side use more than a core each and assert
# latencies and bar closes that a second such run on a 2-core machine would starve: they are
# one group, run one after another on one worker, first, while the other worker runs the
# rest module by module (a module's fixtures are built once, on one worker).
END_TO_END = frozenset(
    {
        "test_dashboard",
        "test_docs_examples",
        "test_liquidation_archive",
        "test_python_api",
        "test_scale",
        "test_scale_parts",
        "test_store_postgres",
        "test_watch",
        "test_watch_cli",
        "test_watch_streams",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.path.stem
        group = "end-to-end" if module in END_TO_END else module
        item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=lambda item: item.path.stem not in END_TO_END)  # stable: the heavy first
