"""Real servers for the source tests, on loopback, started and stopped by the test session.

* :class:`Postgres` — Debian's PostgreSQL (``apt-get install postgresql``, which ``make test``
  does when it is missing): ``initdb`` into a fresh directory, ``pg_ctl start`` on a free port,
  listening on 127.0.0.1 only, password logins over TCP (scram-sha-256). PostgreSQL refuses to
  run as root, so when the tests run as root (CI does) the server runs as an unprivileged
  system user: Debian's ``postgres`` account, or ``wb-postgres`` created here when that is absent.
* :class:`S3` — moto's S3-compatible server (``moto[server]``) in a thread on 127.0.0.1.

A server that cannot start raises :class:`ServerUnavailable` with the reason and the fix: the
source tests fail, never skip, because a skipped server would hide a broken install step.
The benchmark (``benchmarks/bench_sources.py``) uses the same helpers.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["S3", "Postgres", "ServerUnavailable", "free_port", "postgres_server", "s3_server"]

SUPERUSER = "wb"  # the cluster's bootstrap superuser (a database role, not a system account)
PASSWORD = "wb-test-password"  # for loopback test servers only; tests pass it through PGPASSWORD
READER = "reader"  # a login role that may only read, as a serving-log reader would
READER_PASSWORD = "reader-test-password"


class ServerUnavailable(RuntimeError):
    """A test server could not start; the message says why and how to fix it."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise ServerUnavailable("PostgreSQL's server binaries (initdb, pg_ctl) are not installed. "
                                "Fix: run `make test`, which installs Debian's postgresql package, "
                                "or `apt-get install -y postgresql`.")
    return Path(found[-1]).parent


def _run_as(user: str | None, cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` as ``user`` (via runuser when we are root), raising with its output on failure."""
    full = ["runuser", "-u", user, "--", *cmd] if user else cmd
    proc = subprocess.run(full, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        raise ServerUnavailable(f"`{' '.join(cmd)}` failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _server_user() -> str | None:
    """The system account the server runs as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "wb-postgres"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    _run_as(None, ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "wb-postgres"])
    return "wb-postgres"


@dataclass(frozen=True)
class Postgres:
    """A running PostgreSQL cluster on 127.0.0.1:``port`` with database ``ml``."""

    port: int
    data: Path
    user: str | None  # the system account it runs as
    bin: Path

    host = "127.0.0.1"
    database = "ml"

    def uri(self, role: str = SUPERUSER, database: str | None = None, port: int | None = None) -> str:
        """A password-free URI: the password comes from PGPASSWORD, as the workbench asks users to do."""
        return f"postgresql://{role}@{self.host}:{port or self.port}/{database or self.database}"

    def env(self, role: str = SUPERUSER) -> dict[str, str]:
        return {"PGPASSWORD": PASSWORD if role == SUPERUSER else READER_PASSWORD}

    def psql(self, sql: str, database: str | None = None) -> str:
        """Run SQL as the superuser over the server's own unix socket (trust auth, no password)."""
        cmd = [str(self.bin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(self.data), "-p", str(self.port),
               "-U", SUPERUSER, "-d", database or self.database, "-At", "-c", sql]
        return _run_as(self.user, cmd).stdout

    def stop(self) -> None:
        with contextlib.suppress(ServerUnavailable):
            _run_as(self.user, [str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(self.data.parent, ignore_errors=True)


def start_postgres() -> Postgres:
    """initdb + pg_ctl start on a free loopback port; the caller must call ``stop()``."""
    bin_dir = _pg_bin()
    user = _server_user()
    # Not pytest's tmp_path: it lives under a root-only directory the server's account cannot enter.
    base = Path(tempfile.mkdtemp(prefix="wb-pg-"))
    data = base / "data"
    data.mkdir()
    if user:
        shutil.chown(base, user)
        shutil.chown(data, user)
    pwfile = base / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if user:
        shutil.chown(pwfile, user)
    try:
        _run_as(user, [str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, f"--pwfile={pwfile}", "-E", "UTF8",
                       "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256"])
        port = free_port()
        opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {data} -c fsync=off -c full_page_writes=off -c synchronous_commit=off"
        _run_as(user, [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w", "-t", "60", "-o", opts, "start"])
    except ServerUnavailable as exc:
        log = (base / "log").read_text() if (base / "log").exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        raise ServerUnavailable(f"PostgreSQL did not start: {exc}\n{log}") from None
    server = Postgres(port=port, data=data, user=user, bin=bin_dir)
    try:
        server.psql(f"CREATE DATABASE {server.database}", database="postgres")
        server.psql(f"CREATE ROLE {READER} LOGIN PASSWORD '{READER_PASSWORD}'; "
                    f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {READER};")
    except ServerUnavailable:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def postgres_server() -> Iterator[Postgres]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class S3:
    """moto's S3 server on 127.0.0.1:``port``; ``env`` holds the AWS_* variables a client needs."""

    port: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        # Fake keys: moto accepts any. They reach s3fs the way real ones would, from the environment.
        return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": self.endpoint, "AWS_ALLOW_HTTP": "true"}

    def client(self):  # type: ignore[no-untyped-def]  # boto3 ships no types
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                            region_name="us-east-1")


@contextlib.contextmanager
def s3_server() -> Iterator[S3]:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        raise ServerUnavailable(f"moto's server mode is not installed ({exc}). Fix: pip install -e '.[dev]' "
                                "(the dev extra pulls moto[server]).") from None
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            break
        if time.monotonic() > deadline:
            server.stop()
            raise ServerUnavailable(f"moto's S3 server did not listen on 127.0.0.1:{port} within 30 s.")
        time.sleep(0.05)
    try:
        yield S3(port)
    finally:
        server.stop()
