"""Binance's public data archive (data.binance.vision): file paths, verified downloads, a cache.

USD-M files live at `data/futures/um/{daily|monthly}/<dataset>/<SYMBOL>/[<interval>/]<name>`,
each with `<name>.CHECKSUM` beside it holding "<sha256 hex>  <name>" as `sha256sum` writes it
(binance/binance-public-data README). A file is handed out only after its SHA-256 matches,
so a truncated download, a flipped bit or a hand-edited file never reaches the store. Daily
files appear the day after, monthly ones once the month is over.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import string
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from oiradar.backoff import Backoff, retry_after_s
from oiradar.cache import cache_root
from oiradar.errors import ConfigError, DataError, OiradarError, UserError
from oiradar.units import DAY_MS, iso

ENV_URL = "OIRADAR_ARCHIVE_URL"
DEFAULT_URL = "https://data.binance.vision"
USDM_ROOT = "data/futures/um"
# Daily kline files exist for these intervals; 3d, 1w and 1mo are monthly only.
# USD-M liquidation snapshots stop here (binance-public-data issues #337, #361, #420).
LIQUIDATION_LAST_DAY = "2024-03-31"
DAILY_KLINE_INTERVALS = frozenset(
    ["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d"]
)
log = logging.getLogger(__name__)


class Dataset(StrEnum):
    METRICS = "metrics"  # 5-minute OI (coin and USD) and long/short ratios, daily files
    KLINES = "klines"
    PREMIUM = "premiumIndexKlines"  # named like klines: only the folder tells them apart
    FUNDING = "fundingRate"  # monthly files only
    LIQUIDATIONS = "liquidationSnapshot"  # USD-M daily files up to 2024-03-31 only


class ArchiveError(DataError):
    """An archive file that cannot be trusted (corrupt, unverifiable): nothing of it is used."""


class ArchiveUnavailable(OiradarError):
    """The archive did not answer after retries; the run goes on without it."""

    exit_code = 4


@dataclass(frozen=True, slots=True)
class ArchiveFile:
    """One archive file; `date` is YYYY-MM-DD for daily files, YYYY-MM for monthly ones."""

    dataset: Dataset
    symbol: str
    date: str
    interval: str | None = None

    @property
    def name(self) -> str:
        middle = self.interval if self.interval else self.dataset.value
        return f"{self.symbol}-{middle}-{self.date}.zip"

    @property
    def bare_name_ok(self) -> bool:
        """Whether the bare file name says what it is (a premium file is named like klines)."""
        return self.dataset is not Dataset.PREMIUM

    @property
    def monthly(self) -> bool:
        return len(self.date) == 7

    @property
    def path(self) -> str:
        """The path under the archive's root URL (and under the cache and --archive-dir)."""
        folder = f"{USDM_ROOT}/{'monthly' if self.monthly else 'daily'}/{self.dataset.value}"
        folder += f"/{self.symbol}" + (f"/{self.interval}" if self.interval else "")
        return f"{folder}/{self.name}"

    def published(self, now_ms: int) -> bool:
        """Whether the archive can hold it yet: the day (or month) must be over."""
        today = iso(now_ms // DAY_MS * DAY_MS)[:10]
        return self.date < (today[:7] if self.monthly else today)


def metrics_file(symbol: str, day_ms: int) -> ArchiveFile:
    return ArchiveFile(Dataset.METRICS, symbol, iso(day_ms)[:10])


def klines_file(symbol: str, interval: str, day_ms: int) -> ArchiveFile:
    return ArchiveFile(Dataset.KLINES, symbol, iso(day_ms)[:10], interval)


def premium_file(symbol: str, interval: str, day_ms: int) -> ArchiveFile:
    return ArchiveFile(Dataset.PREMIUM, symbol, iso(day_ms)[:10], interval)


def liquidation_file(symbol: str, day_ms: int) -> ArchiveFile:
    return ArchiveFile(Dataset.LIQUIDATIONS, symbol, iso(day_ms)[:10])


def funding_file(symbol: str, ts_ms: int) -> ArchiveFile:
    return ArchiveFile(Dataset.FUNDING, symbol, iso(ts_ms)[:7])


def expected_sha256(checksum: bytes, name: str) -> str:
    """The digest in a `.CHECKSUM` file; its file name, when given, must be `name`."""
    parts = checksum.decode("utf-8", "replace").split()
    digest = parts[0].lower() if parts else ""
    named = parts[-1].lstrip("*") if len(parts) > 1 else name
    if len(digest) != 64 or set(digest) - set(string.hexdigits) or named != name:
        raise ArchiveError(f"{name}.CHECKSUM is not '<sha256 hex>  {name}'; cannot verify {name}")
    return digest


def verify(data: bytes, checksum: bytes, name: str, shown: str, hint: str) -> None:
    """Raise ArchiveError naming `shown` unless sha256(data) is the published digest."""
    want = expected_sha256(checksum, name)
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        raise ArchiveError(
            f"checksum mismatch for {shown}: expected {want[:16]}…, got {got[:16]}…; {hint}"
        )


def verify_beside(path: Path) -> None:
    """Check a file against the `.CHECKSUM` the archive publishes beside it, when one is
    there (`oiradar import`: a file without one is the user's own and read as it is)."""
    checksum = path.with_name(path.name + ".CHECKSUM")
    if checksum.is_file():
        hint = "the file is corrupt (download it again); nothing of it was imported"
        verify(path.read_bytes(), checksum.read_bytes(), path.name, str(path), hint)


class ArchiveSource(ABC):
    """Where verified files come from. `fetch` answers None when the archive has no file
    for that date (before the listing, a gap, not published yet): a fact, not an error."""

    def __init__(self) -> None:
        self.files = 0  # verified files handed out
        self.requests = 0  # HTTP requests sent

    @abstractmethod
    async def fetch(self, file: ArchiveFile) -> Path | None:
        """The local path of `file` after its checksum matched, or None."""

    @abstractmethod
    def describe(self) -> str:
        """Where files come from, for reports."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections."""


class LocalArchive(ArchiveSource):
    """Files already on disk (`--archive-dir`): the archive's layout under `root`, or bare file
    names in it (not premium-index klines, named like klines), each with its `.CHECKSUM`
    beside it. Nothing is downloaded or changed."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        if not root.is_dir():
            raise UserError(f"--archive-dir {root}: no such directory")
        self.root = root

    def describe(self) -> str:
        return str(self.root)

    async def close(self) -> None:
        """Nothing to release: plain files."""

    async def fetch(self, file: ArchiveFile) -> Path | None:
        bare: tuple[Path, ...] = (self.root / file.name,) if file.bare_name_ok else ()
        for candidate in (self.root / file.path, *bare):
            if candidate.is_file():
                await asyncio.to_thread(self._verify, candidate, file)
                self.files += 1
                return candidate
        return None

    @staticmethod
    def _verify(path: Path, file: ArchiveFile) -> None:
        checksum = path.with_name(path.name + ".CHECKSUM")
        if not checksum.is_file():
            raise ArchiveError(
                f"no checksum for {path}: {checksum.name} must sit beside it "
                "(the archive publishes one per file); not importing an unverified file"
            )
        hint = "the file is corrupt (delete it and retry)"
        verify(path.read_bytes(), checksum.read_bytes(), file.name, str(path), hint)


class RemoteArchive(ArchiveSource):
    """Downloads over HTTP(S) into a cache that mirrors the archive's layout. A cached file is
    verified again before use and downloaded afresh if it no longer matches."""

    def __init__(
        self,
        base_url: str,
        cache_dir: Path,
        *,
        attempts: int = 4,
        backoff_s: float = 0.5,
        concurrency: int = 8,
        timeout_s: float = 60.0,
    ) -> None:
        super().__init__()
        self.base_url, self.cache_dir = base_url.rstrip("/"), cache_dir
        self.attempts, self.backoff = attempts, Backoff(backoff_s)
        self.downloaded = 0
        self._sem = asyncio.Semaphore(concurrency)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def describe(self) -> str:
        return f"{self.base_url} (cache {self.cache_dir})"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(self, file: ArchiveFile) -> Path | None:
        target = self.cache_dir / file.path
        checksum = target.with_name(target.name + ".CHECKSUM")
        if target.is_file() and checksum.is_file():
            try:
                await asyncio.to_thread(self._verify_cached, target, checksum, file)
            except ArchiveError as exc:
                log.warning("event=archive_cache_corrupt file=%s error=%s", target, exc)
            else:
                self.files += 1
                return target
        data = await self._get(file.path)
        if data is None:
            return None
        digest = await self._get(file.path + ".CHECKSUM")
        if digest is None:
            raise ArchiveError(
                f"the archive has {file.name} but no {file.name}.CHECKSUM; "
                "not importing an unverified file"
            )
        hint = "the download is corrupt (nothing was cached; retry later)"
        verify(data, digest, file.name, file.name, hint)
        await asyncio.to_thread(self._store, target, data, checksum, digest)
        self.downloaded += 1
        self.files += 1
        return target

    @staticmethod
    def _verify_cached(path: Path, checksum: Path, file: ArchiveFile) -> None:
        hint = "the cached copy is corrupt; downloading it again"
        verify(path.read_bytes(), checksum.read_bytes(), file.name, str(path), hint)

    @staticmethod
    def _store(target: Path, data: bytes, checksum: Path, digest: bytes) -> None:
        """Write both files atomically (temp + rename): a killed run never leaves half a file."""
        target.parent.mkdir(parents=True, exist_ok=True)
        for path, body in ((target, data), (checksum, digest)):
            tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
            tmp.write_bytes(body)
            tmp.replace(path)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def _get(self, path: str) -> bytes | None:
        """The body of GET `path`; None on 404; transient failures retried with backoff."""
        url = f"{self.base_url}/{path}"
        last, asked = "", None
        for attempt in range(self.attempts):
            if attempt:
                await asyncio.sleep(self.backoff.delay(attempt - 1, asked))
            self.requests += 1
            try:
                async with self._sem, self.session.get(url) as response:
                    if response.status == 404:
                        return None
                    if response.status == 200:
                        return await response.read()
                    last = f"HTTP {response.status}"
                    asked = retry_after_s(response.headers)
                    if response.status < 500 and response.status not in (408, 429):
                        break
            except (aiohttp.ClientError, TimeoutError) as exc:
                last, asked = type(exc).__name__, None
        raise ArchiveUnavailable(f"archive unreachable: {url}: {last} (after {attempt + 1} tries)")


def base_url(env: Mapping[str, str]) -> str:
    url = env.get(ENV_URL) or DEFAULT_URL
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{ENV_URL}={url!r} is not a URL like {DEFAULT_URL}")
    return url


def cache_dir(env: Mapping[str, str]) -> Path:
    """`$OIRADAR_CACHE_DIR/archive`, else `archive` in the platform's user-cache directory."""
    return cache_root(env) / "archive"


def open_archive(local_dir: Path | None, env: Mapping[str, str] | None = None) -> ArchiveSource:
    """`--archive-dir` when given, else downloads from `$OIRADAR_ARCHIVE_URL` into the cache."""
    if local_dir is not None:
        return LocalArchive(local_dir)
    env = os.environ if env is None else env
    return RemoteArchive(base_url(env), cache_dir(env))
