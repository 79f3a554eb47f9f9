"""The config file: one TOML file plus `OIRADAR_*` env overrides, validated once at start-up.

Every error is a one-line `ConfigError` naming the key (`sinks[2].token`) and the expected
form. Secrets are `Secret`s: they print as `***` and only `.reveal()` gives the value.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from oiradar.errors import ConfigError

ENV_CONFIG = "OIRADAR_CONFIG"
ENV_PREFIX = "OIRADAR_ALERTS_"
TELEGRAM_API = "https://api.telegram.org"
ALERT_REGIMES = (
    "SHORT_COVERING",
    "SHORT_SQUEEZE",
    "LONG_LIQUIDATION",
    "NEW_SHORTS",
    "NEW_LONGS",
    "LOW_CONVICTION_RALLY",
    "LOW_CONVICTION_SELLOFF",
)


class Secret:
    """A value that never shows itself: `repr`/`str` are `***`; `.reveal()` gives it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class SinkType(StrEnum):
    CONSOLE = "console"
    JSONL = "jsonl"
    WEBHOOK = "webhook"
    TELEGRAM = "telegram"
    DISCORD = "discord"
    SLACK = "slack"


@dataclass(frozen=True, slots=True)
class SinkConfig:
    """One `[[sinks]]` entry; which fields are set depends on `type`."""

    type: SinkType
    name: str
    path: Path | None = None
    url: Secret | None = None
    headers: tuple[tuple[str, Secret], ...] = ()
    token: Secret | None = None
    chat_id: str | None = None
    api_base: str = TELEGRAM_API
    webhook_url: Secret | None = None
    timeout_s: float = 10.0

    def secrets(self) -> tuple[str, ...]:
        """Every secret value this sink holds, for scrubbing text before it is shown."""
        urls = [s.reveal() for s in (self.url, self.webhook_url) if s]
        values = [*urls, *(s.reveal() for s in (self.token,) if s)]
        values += [v.reveal() for _, v in self.headers]
        # A server may echo any part of a webhook URL (its path, its query `?key=…`, a
        # password), and any of them may be the credential: each is a secret on its own.
        for url in urls:
            values += _url_parts(url)
        return tuple(v for v in values if v)


def _url_parts(url: str) -> list[str]:
    """The parts of `url` a server could echo: path, query, each query value, fragment,
    password; a lone `/` or a one-character value is no secret and would scrub everything."""
    parts = urlsplit(url)
    values = [parts.path, parts.query, parts.fragment, parts.password or ""]
    if parts.query:
        values.append(f"{parts.path}?{parts.query}")
        raw = [pair.partition("=")[2] for pair in parts.query.split("&")]
        values += raw + [unquote(v) for v in raw]
    return [v for v in values if len(v) > 1]


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    """`[alerts]`: what passes the gate and how hard delivery is retried."""

    cooldown_s: float = 900.0
    min_confidence: float = 0.0
    regimes: tuple[str, ...] = ("SHORT_COVERING", "SHORT_SQUEEZE")
    max_attempts: int = 4
    backoff_s: float = 1.0


@dataclass(frozen=True, slots=True)
class Config:
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    sinks: tuple[SinkConfig, ...] = ()
    source: Path | None = None


def default_path() -> Path:
    """`$OIRADAR_CONFIG`, else the platform's user config dir, e.g. ~/.config/oiradar/."""
    env = os.environ.get(ENV_CONFIG)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir("oiradar")) / "config.toml"


def load(path: Path | None = None) -> Config:
    """Read and validate the config; a missing file is an error only when it was named."""
    named = path is not None or bool(os.environ.get(ENV_CONFIG))
    target = (path.expanduser() if path else None) or default_path()
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        if named:
            raise ConfigError(
                f"config file {target} not found (create one with: oiradar config init "
                f"--path {target})"
            ) from None
        return parse({}, env=os.environ)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {target}: {exc.strerror}") from None
    return parse(loads(text, target), env=os.environ, source=target)


def loads(text: str, source: Path | None = None) -> dict[str, Any]:
    where = source or "config"
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None


def parse(
    raw: Mapping[str, Any], env: Mapping[str, str] | None = None, source: Path | None = None
) -> Config:
    """Validate a decoded TOML document; `env` supplies `env:NAME` secrets and overrides."""
    env = os.environ if env is None else env
    unknown = set(raw) - {"alerts", "sinks"}
    if unknown:
        raise ConfigError(f"unknown top-level key {sorted(unknown)[0]!r}: use [alerts], [[sinks]]")
    alerts_raw = dict(_table(raw.get("alerts", {}), "alerts"))
    for key in _ALERT_KEYS:
        if (value := env.get(ENV_PREFIX + key.upper())) is not None:
            alerts_raw[key] = _from_env(key, value)
    sinks_raw = raw.get("sinks", [])
    if not isinstance(sinks_raw, list):
        raise ConfigError("sinks: expected [[sinks]] tables (an array of tables)")
    sinks = tuple(_sink(_table(s, f"sinks[{i}]"), i, env) for i, s in enumerate(sinks_raw, 1))
    names = [s.name for s in sinks]
    if dup := next((n for n in names if names.count(n) > 1), None):
        raise ConfigError(f"sinks: two sinks are named {dup!r}; give each a unique name")
    return Config(_alerts(alerts_raw), sinks, source)


_ALERT_KEYS = ("cooldown_s", "min_confidence", "regimes", "max_attempts", "backoff_s")


def _from_env(key: str, value: str) -> Any:
    if key == "regimes":
        return [r.strip() for r in value.split(",") if r.strip()]
    try:
        return float(value) if key != "max_attempts" else int(value)
    except ValueError:
        raise ConfigError(f"{ENV_PREFIX}{key.upper()}: expected a number, got {value!r}") from None


def _table(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a table")
    return value


def _number(raw: Mapping[str, Any], key: str, where: str, default: float, lo: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < lo:
        raise ConfigError(f"{where}.{key}: expected a number >= {lo:g}, got {value!r}")
    return float(value)


def _alerts(raw: Mapping[str, Any]) -> AlertsConfig:
    defaults = AlertsConfig()
    unknown = set(raw) - set(_ALERT_KEYS)
    if unknown:
        raise ConfigError(
            f"alerts.{sorted(unknown)[0]}: unknown key; expected one of {', '.join(_ALERT_KEYS)}"
        )
    regimes = raw.get("regimes", list(defaults.regimes))
    if not isinstance(regimes, list) or not regimes:
        raise ConfigError('alerts.regimes: expected a list like ["SHORT_COVERING"]')
    picked = tuple(str(r).strip().upper() for r in regimes)
    if bad := next((r for r in picked if r not in ALERT_REGIMES), None):
        raise ConfigError(f"alerts.regimes: unknown regime {bad!r}; use {', '.join(ALERT_REGIMES)}")
    attempts = raw.get("max_attempts", defaults.max_attempts)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 20:
        raise ConfigError(f"alerts.max_attempts: expected an integer 1-20, got {attempts!r}")
    min_conf = _number(raw, "min_confidence", "alerts", 0.0, 0.0)
    if min_conf > 100:
        raise ConfigError(f"alerts.min_confidence: expected 0-100, got {min_conf:g}")
    return AlertsConfig(
        cooldown_s=_number(raw, "cooldown_s", "alerts", defaults.cooldown_s, 0.0),
        min_confidence=min_conf,
        regimes=tuple(dict.fromkeys(picked)),
        max_attempts=attempts,
        backoff_s=_number(raw, "backoff_s", "alerts", defaults.backoff_s, 0.0),
    )


class _Fields:
    """Typed reads of one `[[sinks]]` table; every error names `sinks[i].key`."""

    def __init__(self, raw: Mapping[str, Any], where: str, env: Mapping[str, str]) -> None:
        self.raw, self.where, self.env = raw, where, env

    def text(self, key: str, what: str, default: str | None = None) -> str:
        value = self.raw.get(key, default)
        if value is None:
            raise ConfigError(f"{self.where}.{key}: missing; expected {what}")
        if not isinstance(value, str | int) or isinstance(value, bool) or not str(value):
            raise ConfigError(f"{self.where}.{key}: expected {what}")
        return str(value)

    def secret(self, key: str, what: str) -> Secret:
        value = self.raw.get(key)
        if value is None:
            raise ConfigError(f"{self.where}.{key}: missing; expected {what} or env:NAME")
        return self._secret(value, f"{self.where}.{key}", what)

    def _secret(self, value: Any, where: str, what: str) -> Secret:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: expected {what} or env:NAME")
        if value.startswith("env:"):
            name = value[4:]
            if not name:
                raise ConfigError(f"{where}: env: needs a variable name, e.g. env:OIRADAR_TOKEN")
            if not self.env.get(name):
                raise ConfigError(f"{where}: environment variable {name} is not set or empty")
            value = self.env[name]
        return Secret(value)

    def url(self, key: str, secret: bool, default: str | None = None) -> str:
        what = "an http(s) URL"
        value = self.secret(key, what).reveal() if secret else self.text(key, what, default)
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            # Never echo the value: a webhook URL is itself the credential.
            raise ConfigError(f"{self.where}.{key}: expected an http:// or https:// URL")
        return value

    def headers(self) -> tuple[tuple[str, Secret], ...]:
        raw = self.raw.get("headers", {})
        if not isinstance(raw, dict):
            raise ConfigError(f'{self.where}.headers: expected a table like {{ X-Key = "..." }}')
        return tuple(
            (str(k), self._secret(v, f"{self.where}.headers.{k}", "a header value"))
            for k, v in raw.items()
        )

    def timeout(self) -> float:
        return _number(self.raw, "timeout_s", self.where, 10.0, 0.1)


_COMMON = {"type", "name", "timeout_s"}


def _console(f: _Fields, base: dict[str, Any]) -> SinkConfig:
    return SinkConfig(**base)


def _jsonl(f: _Fields, base: dict[str, Any]) -> SinkConfig:
    path = Path(f.text("path", "a file path, e.g. ~/oiradar/alerts.jsonl")).expanduser()
    return SinkConfig(**base, path=path)


def _webhook(f: _Fields, base: dict[str, Any]) -> SinkConfig:
    return SinkConfig(**base, url=Secret(f.url("url", secret=True)), headers=f.headers())


def _telegram(f: _Fields, base: dict[str, Any]) -> SinkConfig:
    token = f.secret("token", "a bot token like 123456:ABC...")
    chat_id = f.text("chat_id", "a chat id like -1001234567890 or @channel")
    api_base = f.url("api_base", secret=False, default=TELEGRAM_API).rstrip("/")
    return SinkConfig(**base, token=token, chat_id=chat_id, api_base=api_base)


def _hook(f: _Fields, base: dict[str, Any]) -> SinkConfig:
    return SinkConfig(**base, webhook_url=Secret(f.url("webhook_url", secret=True)))


_SINKS: dict[SinkType, tuple[Callable[[_Fields, dict[str, Any]], SinkConfig], set[str]]] = {
    SinkType.CONSOLE: (_console, set()),
    SinkType.JSONL: (_jsonl, {"path"}),
    SinkType.WEBHOOK: (_webhook, {"url", "headers"}),
    SinkType.TELEGRAM: (_telegram, {"token", "chat_id", "api_base"}),
    SinkType.DISCORD: (_hook, {"webhook_url"}),
    SinkType.SLACK: (_hook, {"webhook_url"}),
}


def _sink(raw: Mapping[str, Any], index: int, env: Mapping[str, str]) -> SinkConfig:
    where = f"sinks[{index}]"
    kind = raw.get("type")
    types = "|".join(t.value for t in SinkType)
    if kind is None:
        raise ConfigError(f"{where}.type: missing; expected one of {types}")
    if kind not in {t.value for t in SinkType}:
        raise ConfigError(f"{where}.type: unknown sink type {kind!r}; expected one of {types}")
    sink_type = SinkType(kind)
    build, keys = _SINKS[sink_type]
    unknown = set(raw) - _COMMON - keys
    if unknown:
        allowed = ", ".join(sorted(_COMMON | keys))
        raise ConfigError(f"{where}.{sorted(unknown)[0]}: unknown key for {kind}; use {allowed}")
    fields = _Fields(raw, where, env)
    name = fields.text("name", "a short name", f"{kind}-{index}")
    base: dict[str, Any] = {"type": sink_type, "name": name, "timeout_s": fields.timeout()}
    return build(fields, base)


EXAMPLE = """\
# oiradar config: alerts for `oiradar watch`; test the sinks with `oiradar alerts test`.
# Docs: docs/config.md. Secrets may be written env:NAME to read them from the environment;
# they are never printed or logged.

[alerts]
# Seconds during which the same regime for the same symbol is not alerted again.
# An escalation (short covering -> squeeze) and an exhaustion alert always pass.
cooldown_s = 900
# Alerts below this confidence (0-100) are dropped.
min_confidence = 0
# Regimes that raise a new alert.
regimes = ["SHORT_COVERING", "SHORT_SQUEEZE"]
# Delivery: attempts per alert and sink, and the first retry delay (doubles each time).
max_attempts = 4
backoff_s = 1.0

# One [[sinks]] table per destination. Every sink takes an optional name and timeout_s.

[[sinks]]
type = "console"

# [[sinks]]
# type = "jsonl"
# path = "~/oiradar/alerts.jsonl"

# [[sinks]]
# type = "webhook"
# url = "env:OIRADAR_WEBHOOK_URL"
# headers = { Authorization = "env:OIRADAR_WEBHOOK_AUTH" }

# [[sinks]]
# type = "telegram"
# token = "env:OIRADAR_TELEGRAM_TOKEN"
# chat_id = "-1001234567890"

# [[sinks]]
# type = "discord"
# webhook_url = "env:OIRADAR_DISCORD_WEBHOOK"

# [[sinks]]
# type = "slack"
# webhook_url = "env:OIRADAR_SLACK_WEBHOOK"
"""


def write_example(path: Path, force: bool = False) -> Path:
    """Write `EXAMPLE` to `path`; refuse to replace an existing file unless `force`."""
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists; use --force to overwrite it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(EXAMPLE, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    return path
