"""Weights resolution: local-dir, hub names, refusal of random models, fast offline errors."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from mmcurate.embed.model import ModelSpec, resolve_model
from mmcurate.exceptions import ModelNotAvailableError


def test_local_dir_without_weights_is_refused(micro_clip_dir, tmp_path):
    folder = tmp_path / "noweights"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text((micro_clip_dir / "open_clip_config.json").read_text())
    with pytest.raises(ModelNotAvailableError, match="no weights file"):
        resolve_model(ModelSpec(f"local-dir:{folder}"))


def test_local_dir_missing_folder_and_config(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        resolve_model(ModelSpec(f"local-dir:{tmp_path / 'nope'}"))
    with pytest.raises(ModelNotAvailableError, match=r"open_clip_config\.json"):
        resolve_model(ModelSpec(f"local-dir:{tmp_path}"))


def test_local_dir_loads_and_encodes(micro_clip_dir):
    from PIL import Image

    from mmcurate.embed.encoder import load_encoder

    enc = load_encoder(ModelSpec(f"local-dir:{micro_clip_dir}"))
    assert enc.info["dim"] == 32
    assert len(enc.info["weights_sha256"]) == 64
    assert enc.info["preprocess"]["size"] in (32, [32, 32])
    txt = enc.encode_texts(["a red circle", "two blue squares"])
    img = enc.encode_images([Image.new("RGB", (40, 30), (255, 0, 0))])
    assert txt.shape == (2, 32) and img.shape == (1, 32)
    np.testing.assert_allclose(np.linalg.norm(txt, axis=1), 1.0, rtol=1e-5)


def test_random_model_refused_unless_allowed():
    with pytest.raises(ModelNotAvailableError, match="randomly initialised"):
        resolve_model(ModelSpec("ViT-B-32", None))
    assert resolve_model(ModelSpec("ViT-B-32", None), allow_random=True).weights_path is None


def test_unknown_tag_lists_tags():
    with pytest.raises(ModelNotAvailableError, match="laion2b_s34b_b79k"):
        resolve_model(ModelSpec("ViT-B-32", "no_such_tag"))


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown open_clip model"):
        resolve_model(ModelSpec("ViT-Nope-99", "x"))


def test_weights_file_path_is_used(tmp_path):
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"0")
    resolved = resolve_model(ModelSpec("ViT-B-32", str(weights)))
    assert resolved.weights_path == str(weights) and resolved.open_clip_pretrained == str(weights)


def test_offline_default_model_errors_without_network(tmp_path):
    """Default ViT-B-32/laion2b with an empty HF cache: a clear error and not one network attempt
    (so nothing can hang on a timeout). Counted with an audit hook, never timed."""
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HOME": str(tmp_path)}
    env.pop("HF_HUB_OFFLINE", None)  # even without the offline flag mmcurate must not try to download
    code = ("import sys\n"
            "net = []\n"
            "sys.addaudithook(lambda event, args: net.append(event) if event.startswith('socket.')"
            " and event != 'socket.__new__' else None)\n"
            "from mmcurate.embed.model import ModelSpec, resolve_model\n"
            "try:\n"
            "    resolve_model(ModelSpec())\n"
            "finally:\n"
            "    print('network events:', sorted(set(net)), len(net), file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)  # a hang guard only
    assert proc.returncode != 0
    assert "ModelNotAvailableError" in proc.stderr
    assert "--pretrained" in proc.stderr and "local-dir:" in proc.stderr
    assert "network events: [] 0" in proc.stderr, proc.stderr[-2000:]


def test_allow_download_unreachable_hub_errors_fast(tmp_path, monkeypatch):
    from mmcurate.embed import model as m

    monkeypatch.setattr(m, "_hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelNotAvailableError, match="unreachable"):
        resolve_model(ModelSpec("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K"), allow_download=True)


def _fake_hf_cache(root, repo_id, files: dict):
    """Lay files out the way huggingface_hub caches a downloaded repo snapshot."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    for name, src in files.items():
        (snap / name).write_bytes(src.read_bytes())
    return snap


def test_hf_hub_model_resolved_from_local_cache(micro_clip_dir, tmp_path):
    code = (
        "import sys; from mmcurate.embed.model import ModelSpec, resolve_model\n"
        "r = resolve_model(ModelSpec('hf-hub:someorg/micro'))\n"
        "print(r.open_clip_name); print(r.weights_path)\n"
    )
    cache = tmp_path / "hub"
    snap = _fake_hf_cache(cache, "someorg/micro", {
        "open_clip_config.json": micro_clip_dir / "open_clip_config.json",
        "open_clip_model.safetensors": micro_clip_dir / "open_clip_model.safetensors"})
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    name, weights = out.stdout.split()
    assert name == f"local-dir:{snap}" and weights.endswith("open_clip_model.safetensors")


def test_pretrained_tag_resolved_from_local_cache(tmp_path):
    """The default tag is looked up in the HF cache (no network) under open_clip's repo name."""
    cache = tmp_path / "hub"
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"not really weights")
    _fake_hf_cache(cache, "laion/CLIP-ViT-B-32-laion2B-s34B-b79K", {"open_clip_model.safetensors": weights})
    code = ("from mmcurate.embed.model import ModelSpec, resolve_model\n"
            "print(resolve_model(ModelSpec()).weights_path)\n")
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("open_clip_model.safetensors")
    assert str(cache) in out.stdout


_HUB_SPY = """
import http.server, os, sys, threading
hits = []
class Hub(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):
        hits.append(self.path)
        self.send_response(404)
        self.end_headers()
    do_GET = do_HEAD
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
threading.Thread(target=server.serve_forever, daemon=True).start()
os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{server.server_port}"  # read when hub is imported
from huggingface_hub import constants, hf_hub_download
import open_clip
from mmcurate.embed.encoder import load_encoder
from mmcurate.embed.model import ModelSpec

def ask_hub():
    try:
        hf_hub_download("someorg/micro", "open_clip_config.json")
    except Exception:
        pass

during = []
real = open_clip.create_model_and_transforms
def spy(*args, **kwargs):  # what open_clip's own hub lookups would meet while the model is built
    during.append(constants.is_offline_mode())
    ask_hub()
    return real(*args, **kwargs)
open_clip.create_model_and_transforms = spy
load_encoder(ModelSpec("local-dir:" + sys.argv[1]), device="cpu")
print(during, len(hits), constants.is_offline_mode(), os.environ.get("HF_HUB_OFFLINE"))
ask_hub()
print(len(hits))
"""


def test_hub_offline_only_while_open_clip_builds(micro_clip_dir):
    """No HF_HUB_OFFLINE in the environment: while load_encoder builds the model the hub is offline
    (a hub request made then never reaches the server), and afterwards the process is as it was
    (no HF_HUB_OFFLINE set, the same request reaches the server)."""
    env = {**os.environ, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    env.pop("HF_HUB_OFFLINE", None)
    out = subprocess.run([sys.executable, "-c", _HUB_SPY, str(micro_clip_dir)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    during, after = out.stdout.strip().splitlines()
    assert during == "[True] 0 False None"
    assert int(after) >= 1  # online again: the server saw the request
