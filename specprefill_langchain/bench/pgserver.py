"""A throwaway PostgreSQL server: a temporary cluster on a free localhost port, removed on exit.

    with ThrowawayPostgres() as pg:
        with PostgresSaver.from_conn_string(pg.url) as saver: ...

Stable mode keeps the frozen forms in the LangGraph checkpoint, so the claim "any worker that
resumes a thread sends the same bytes" has to be checked against the checkpointer teams run in
production: PostgreSQL, shared by many worker processes. The fleet benchmark and the tests need a
real server but no installed service, so this module makes one from the server's own binaries
(``initdb``, ``pg_ctl``): ``initdb -A trust -U postgres`` into a temporary directory, ``pg_ctl
start`` on a free port with its socket in that directory, and on exit ``pg_ctl stop -m immediate``
and the directory removed, also after an error. Startup takes about two seconds.

PostgreSQL refuses to run as root, so as root the binaries run as the ``postgres`` system user
(``runuser``, else ``su``) on directories chowned to it. ``fsync=off``: the cluster is thrown away,
and a crash of the *server* is not what is being tested (client processes are killed, not it).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

SEARCH_DIRS = (
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/usr/local/pgsql/bin",
    "/opt/homebrew/opt/postgresql*/bin",
)
SYSTEM_USER = "postgres"


class PostgresNotFoundError(RuntimeError):
    """The PostgreSQL server binaries (``initdb``, ``pg_ctl``) are not installed or not reachable."""


def find_bin_dir() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``: from ``PATH`` first, else a versioned install."""
    found = shutil.which("initdb"), shutil.which("pg_ctl")
    if all(found):
        return Path(found[0]).resolve().parent  # follow Debian's /usr/local/bin links to the real bin
    candidates = [Path(p) for pattern in SEARCH_DIRS for p in glob.glob(pattern)]
    candidates = [d for d in candidates if (d / "initdb").is_file() and (d / "pg_ctl").is_file()]
    if candidates:
        return max(candidates, key=lambda d: _version_key(d))
    msg = (
        "PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH nor in "
        f"{', '.join(SEARCH_DIRS)}. Install the server (Debian/Ubuntu: `apt-get install postgresql`; "
        "macOS: `brew install postgresql`) or put its bin folder on PATH."
    )
    raise PostgresNotFoundError(msg)


def _version_key(d: Path) -> tuple[int, ...]:
    digits = "".join(c if c.isdigit() else " " for c in str(d)).split()
    return tuple(int(x) for x in digits)


def free_port() -> int:
    """A localhost TCP port that is free now (the server may still lose a race for it: start retries)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThrowawayPostgres:
    """A temporary PostgreSQL cluster; a context manager (``start()``/``stop()`` also work).

    Args:
        bin_dir: folder of ``initdb``/``pg_ctl`` (default: :func:`find_bin_dir`).
        port: TCP port on localhost (default: a free one, retried on a lost race).
        base_dir: where the temporary directory is made (default: the system's temp dir); as root it
            must be reachable by the ``postgres`` user.
        timeout_s: how long ``pg_ctl`` waits for the server to start or stop.
    """

    def __init__(
        self, *, bin_dir: str | Path | None = None, port: int | None = None, base_dir: str | None = None,
        timeout_s: int = 60,
    ) -> None:  # fmt: skip
        self.bin_dir = Path(bin_dir) if bin_dir is not None else find_bin_dir()
        self.port = port
        self.base_dir = base_dir
        self.timeout_s = timeout_s
        self.root: Path | None = None
        self.running = False
        self._as_postgres = os.geteuid() == 0

    @property
    def url(self) -> str:
        if not self.running:
            msg = "the server is not running: use `with ThrowawayPostgres() as pg:` or call start() first."
            raise RuntimeError(msg)
        return f"postgresql://postgres@localhost:{self.port}/postgres?sslmode=disable"

    @property
    def data_dir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    def __enter__(self) -> ThrowawayPostgres:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> ThrowawayPostgres:
        """initdb into a new temporary directory and start the server; on any failure, clean up and raise."""
        try:
            self._make_dirs()
            self._run("initdb", "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale", "-N", "-D", self.data_dir)
            tried = []
            for _ in range(1 if self.port is not None else 3):  # a free port can be taken before the bind
                tried.append(self.port if self.port is not None else free_port())
                if self._start_on(tried[-1]):
                    break
            if not self.running:
                msg = f"PostgreSQL did not start (port {', '.join(map(str, tried))}):\n{self._log_tail()}"
                raise RuntimeError(msg)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_on(self, port: int) -> bool:
        opts = f"-p {port} -k {self.root / 'sock'} -c listen_addresses=localhost -c fsync=off"
        log = self.root / "server.log"  # type: ignore[operator]
        cmd = ["-D", self.data_dir, "-o", opts, "-l", log, "-w", "-t", str(self.timeout_s), "start"]
        done = self._run("pg_ctl", *cmd, check=False)
        if done.returncode == 0:
            self.port, self.running = port, True
        return self.running

    def stop(self) -> None:
        """Stop the server at once (``-m immediate``) and remove the directory; safe to call twice."""
        if self.root is None:
            return
        try:
            if self.running or (self.data_dir / "postmaster.pid").exists():
                done = self._run("pg_ctl", "-D", self.data_dir, "-m", "immediate", "-w", "stop", check=False)
                if done.returncode != 0:
                    self._kill_postmaster()
        finally:
            self.running = False
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def _make_dirs(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="specprefill-pg-", dir=self.base_dir))
        (self.root / "sock").mkdir()
        if not self._as_postgres:
            return
        try:
            user = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            msg = (
                f"running as root, PostgreSQL needs a `{SYSTEM_USER}` system user to run as (it refuses root); "
                f"create one (`useradd --system {SYSTEM_USER}`) or run as another user."
            )
            raise PostgresNotFoundError(msg) from None
        for path in (self.root, self.root / "sock"):
            os.chown(path, user.pw_uid, user.pw_gid)
        if self._run("test", "-w", self.root, check=False, bin_=False).returncode != 0:
            msg = (
                f"the `{SYSTEM_USER}` user cannot write {self.root}: pass base_dir= a folder it can reach (e.g. /tmp)."
            )
            raise PermissionError(msg)

    def _run(self, prog: str, *args: object, check: bool = True, bin_: bool = True) -> subprocess.CompletedProcess:
        exe = str(self.bin_dir / prog) if bin_ else prog
        cmd = [exe, *map(str, args)]
        if self._as_postgres:
            runuser = shutil.which("runuser")
            cmd = (
                [runuser, "-u", SYSTEM_USER, "--", *cmd]
                if runuser
                else ["su", SYSTEM_USER, "-s", "/bin/sh", "-c", shlex.join(cmd)]
            )
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=self.timeout_s + 30, cwd="/")
        if check and done.returncode != 0:
            msg = f"{prog} failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
            raise RuntimeError(msg)
        return done

    def _kill_postmaster(self) -> None:
        """The last resort when pg_ctl cannot stop it: SIGKILL the postmaster named in its pid file."""
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, 9)
            time.sleep(0.5)

    def _log_tail(self) -> str:
        log = self.root / "server.log" if self.root is not None else None
        return log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else "(no server log)"


__all__ = ["PostgresNotFoundError", "ThrowawayPostgres", "find_bin_dir", "free_port"]
