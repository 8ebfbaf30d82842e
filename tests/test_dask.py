"""Dask distributed executor: a real scheduler and worker processes on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from batchutil import SYNTHETIC, assert_same_tables, batch_folder, cli

distributed = pytest.importorskip("distributed")

ARGS = ["--replicates", "96", "--no-plots", "--set", "time.steps=30", "--set", "runs.chunk=8"]


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=50,
    ) as c:
        yield c


@pytest.fixture(scope="module")
def local_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    r = cli("run", SYNTHETIC, *ARGS, "--workers", "1", "--out", out)
    assert r.exit_code == 0, r.output
    return batch_folder(out)


def test_dask_results_equal_local_results(cluster, local_results, tmp_path):
    """The same batch on a Dask cluster gives tables identical to local in-process ones."""
    r = cli("run", SYNTHETIC, *ARGS, "--scheduler", cluster.scheduler_address, "--out", tmp_path)
    assert r.exit_code == 0, r.output
    folder = batch_folder(tmp_path)
    assert folder.name == local_results.name  # the executor is not part of the batch id
    assert_same_tables(folder, local_results)


def test_dask_worker_killed_mid_batch_still_completes_identically(cluster, local_results, tmp_path):
    """SIGKILL of one Dask worker mid-batch: the batch completes with identical tables."""
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    killed = threading.Event()

    def killer() -> None:
        deadline = time.time() + 60
        while time.time() < deadline:
            if len(list(tmp_path.glob("*/*/runs.parquet/part-*.parquet"))) >= 2:
                os.kill(victim, signal.SIGKILL)
                killed.set()
                return
            time.sleep(0.02)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    r = cli("run", SYNTHETIC, *ARGS, "--scheduler", cluster.scheduler_address, "--out", tmp_path)
    thread.join(timeout=5)
    assert killed.is_set(), "the worker was not killed during the batch"
    assert r.exit_code == 0, r.output
    folder = batch_folder(tmp_path)
    assert len(list((folder / "runs.parquet").glob("part-*"))) == 12
    assert_same_tables(folder, local_results)
