"""A real Ray cluster started with ``ray start`` (a head and a second node on 127.0.0.1, token
authentication as Ray 2.59+ enables it): ``embed`` and ``rank`` with ``--address`` equal the local
engine. The README's "Ray cluster" steps are the ones this test takes.

Ray 2.60 turns token authentication on for ``ray start --head`` when a token exists (default file
``~/.ray/auth_token``), but ``ray.init(address=...)`` with an explicit address never turns it on by
itself, so a client without ``RAY_AUTH_MODE=token`` is refused (``InvalidAuthToken``). Every process
here gets ``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN_PATH`` (a token file of this test's own), the
set-up Ray documents ("Ray token authentication", docs.ray.io/en/latest/ray-security/token-auth.html).
The cluster is stopped by process group and by its private temp dir, never with ``ray stop`` (which
stops every Ray process of the machine).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmcurate.embed.model import ModelSpec
from mmcurate.project import create_project, open_project
from mmcurate.rank import compute_ranking

pytest.importorskip("ray", reason="Ray engine tests need ray[data] (pip install 'mmcurate[ray]')")

pytestmark = pytest.mark.slow

_RAY = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
if _RAY is None:
    pytest.skip("the `ray` command (pip install 'mmcurate[ray]') is not on this machine",
                allow_module_level=True)
_CLI = "import sys; from mmcurate.cli import main; sys.exit(main(sys.argv[1:]))"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(procs: list[subprocess.Popen], ray_dir) -> None:
    """Stop what this test started: each ``ray start --block`` process group, then any process
    whose command line names this cluster's private temp dir (workers, raylet, GCS)."""
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    time.sleep(2)
    ray_dir.kill()


@pytest.fixture
def cluster(tmp_path, private_ray_dir):
    """A head and a second node started with ``ray start`` (1 CPU each), token authentication on."""
    temp_dir = private_ray_dir.path
    token = Path(temp_dir) / "token"
    token.write_text(secrets.token_hex(32))
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
           "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0", "RAY_USAGE_STATS_ENABLED": "0"}
    port = _free_port()
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--temp-dir", temp_dir, "--block",
              "--disable-usage-stats"]
    procs = [subprocess.Popen([_RAY, "start", "--head", "--port", str(port), "--include-dashboard", "false",
                               *common], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    address = f"127.0.0.1:{port}"
    try:
        _wait_for_nodes(address, 1, env)
        procs.append(subprocess.Popen([_RAY, "start", "--address", address, *common], env=env,
                                      start_new_session=True, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        _wait_for_nodes(address, 2, env)
        yield address, env
    finally:
        _stop(procs, private_ray_dir)


def _wait_for_nodes(address: str, n: int, env: dict, timeout: float = 180.0) -> None:
    probe = ("import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
             "print(sum(node['Alive'] for node in ray.nodes()))")
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        out = subprocess.run([sys.executable, "-c", probe, address], env=env, capture_output=True,
                             text=True, timeout=120)
        if out.returncode == 0 and out.stdout.strip().splitlines()[-1:] == [str(n)]:
            return
        last = out.stderr[-2000:]
        time.sleep(2)
    raise TimeoutError(f"the Ray cluster at {address} did not show {n} nodes: {last}")


def test_embed_and_rank_on_a_started_cluster_equal_the_local_engine(cluster, micro_clip_dir, tmp_path,
                                                                    noise_pairs):
    address, env = cluster
    csv = noise_pairs(tmp_path / "d", 60)
    spec = ModelSpec(f"local-dir:{micro_clip_dir}", None)
    local = create_project(tmp_path / "local", pairs=csv, model=spec, progress=False)
    local.embed(progress=False, num_workers=0)
    remote = create_project(tmp_path / "remote", pairs=csv, model=spec, progress=False)
    for argv in (["embed", str(remote.root), "--engine", "ray", "--address", address, "--no-progress"],
                 ["rank", str(remote.root), "--engine", "ray", "--address", address, "--strategy",
                  "disagreement", "margin", "--out", str(tmp_path / "r.csv")]):
        run = subprocess.run([sys.executable, "-c", _CLI, *argv], env=env, capture_output=True, text=True,
                             timeout=600)
        assert run.returncode == 0, run.stderr[-3000:]
    remote = open_project(remote.root)
    for side in ("image_embeddings", "text_embeddings"):
        np.testing.assert_allclose(np.asarray(getattr(remote, side)(), np.float32),
                                   np.asarray(getattr(local, side)(), np.float32), atol=2e-3)
    want = compute_ranking(remote.image_embeddings(), remote.text_embeddings(),
                           strategies=["disagreement", "margin"], approximate=True, calibrator="prior")
    got = pd.read_csv(tmp_path / "r.csv", dtype={"pair_id": str}).set_index("pair_id")
    got = got.loc[remote.pairs["pair_id"]]
    for column in ("disagreement", "margin", "p_aligned"):
        np.testing.assert_allclose(got[column].to_numpy(), want[column].to_numpy(), atol=1e-4, err_msg=column)
