"""A real PostgreSQL server for the tests: the machine's own binaries, a temp dir, loopback.

One server per test session (`pg_server` in conftest.py), one fresh database per test
(`PgServer.new_database`). The server listens on 127.0.0.1 at a free port, with its unix
socket in its own temp dir, and runs with fsync off (a test database need not survive a
power cut). PostgreSQL refuses to run as root: under uid 0 it runs as the `postgres` user
(Debian's package creates it), or a system user `oiradar-pg` created for the purpose.

Where it cannot start (no binaries on a user's machine) the tests that need it skip with
the reason; with CI=true they fail instead (.ci/run installs Debian's postgresql).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SUPERUSER = "oiradar"
PASSWORD = "pg-s3cret-not-shown"  # tests grep all output for it
_names = itertools.count()


def bindir() -> Path | None:
    """Where initdb/pg_ctl live: PATH, `pg_config --bindir`, then Debian's versioned dirs."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, check=True, text=True)
        path = Path(out.stdout.strip())
        if (path / "initdb").exists():
            return path
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return debian[-1].parent if debian else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> pwd.struct_passwd | None:
    """The unprivileged user to run the server as when we are root (None: run as we are)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "oiradar-pg"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "oiradar-pg"], check=True, capture_output=True
    )
    return pwd.getpwnam("oiradar-pg")


@dataclass
class PgServer:
    root: Path
    port: int
    bin: Path
    user: pwd.struct_passwd | None
    durable: bool = False  # benches: fsync and synchronous commits on, a small box's memory

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, dbname: str = "postgres", *, password: bool = True) -> str:
        secret = f":{PASSWORD}" if password else ""
        return f"postgresql://{SUPERUSER}{secret}@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, object] = {}
        if self.user is not None:
            kwargs = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        done: subprocess.CompletedProcess[str] = subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            cwd=self.root,
            env={**os.environ, "LC_ALL": "C", "HOME": str(self.root)},
            check=False,
            **kwargs,  # type: ignore[call-overload]
        )
        return done

    def start(self) -> None:
        (self.root / "pw").write_text(PASSWORD)
        if self.user is not None:
            for path in (self.root, self.root / "pw"):
                os.chown(path, self.user.pw_uid, self.user.pw_gid)
        init = self._run(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, f"--pwfile={self.root / 'pw'}",
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        if init.returncode:
            raise RuntimeError(f"initdb failed: {init.stderr.strip()[-500:]}")
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c max_connections=200"
        if self.durable:
            opts += " -c shared_buffers=512MB -c max_wal_size=4GB"
        else:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        log = self.root / "server.log"
        started = self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(log), "-w",
                            "-t", "60", "start")  # fmt: skip
        if started.returncode:
            tail = log.read_text()[-800:] if log.exists() else started.stderr
            raise RuntimeError(f"postgres did not start: {tail.strip()}")

    def restart(self) -> None:
        """A fast restart: every connection is cut, the server is back when this returns."""
        log = self.root / "server.log"
        done = self._run("pg_ctl", "-D", str(self.data), "-l", str(log), "-m", "fast", "-w",
                         "-t", "60", "restart")  # fmt: skip
        if done.returncode:
            raise RuntimeError(f"postgres did not restart: {log.read_text()[-800:]}")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def new_database(self) -> str:
        """A fresh empty database; its URL (with the password)."""
        import psycopg

        name = f"t{os.getpid()}_{next(_names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)


def start_server(*, durable: bool = False) -> PgServer:
    """Start one; RuntimeError says why it could not."""
    where = bindir()
    if where is None:
        raise RuntimeError("no PostgreSQL binaries (initdb) on PATH or in pg_config --bindir")
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise RuntimeError("psycopg is not installed (pip install -e '.[test]')") from exc
    root = Path(tempfile.mkdtemp(prefix="oiradar-pg-"))
    server = PgServer(root, _free_port(), where, _run_as(), durable)
    try:
        server.start()
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return server
