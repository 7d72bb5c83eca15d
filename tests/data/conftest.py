"""A real Dask cluster for the scan tests: a ``LocalCluster`` of two worker processes on loopback, started by the
test session and stopped after it.

Dask is in the dev extra, so a missing dask is a broken install: the tests that need the cluster fail with the
install command, never skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def dask_client() -> Iterator[Any]:
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - the dev extra installs it
        pytest.fail(f"the Dask tests need dask and distributed ({exc}). Fix: pip install -e '.[dev]' (or 'ml-workbench[dask]').")
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0",
                           env={"POLARS_MAX_THREADS": "1"})
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
