"""Session-wide servers for the source tests: PostgreSQL and an S3-compatible store, on loopback.

Started on first use and stopped when the session ends (see tests/servers.py). A server
that cannot start fails the tests that need it, with the reason and the fix: never a skip.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import S3, Postgres, ServerUnavailable, postgres_server, s3_server


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    try:
        with postgres_server() as server:
            yield server
    except ServerUnavailable as exc:
        pytest.fail(f"cannot start the test PostgreSQL server: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def s3() -> Iterator[S3]:
    try:
        with s3_server() as server:
            yield server
    except ServerUnavailable as exc:
        pytest.fail(f"cannot start the test S3 server: {exc}", pytrace=False)


@pytest.fixture
def pg_env(postgres: Postgres, monkeypatch: pytest.MonkeyPatch) -> Postgres:
    """The server, with its password in PGPASSWORD for this test only (as a user would supply it)."""
    for key, value in postgres.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PGPASSFILE", "/nonexistent")  # the runner's own ~/.pgpass must not answer for it
    return postgres


@pytest.fixture
def s3_env(s3: S3, monkeypatch: pytest.MonkeyPatch) -> S3:
    """The S3 server, with its endpoint and (fake) keys in AWS_* for this test only."""
    for key, value in s3.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return s3
