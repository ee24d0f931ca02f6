"""A shard set written by the real img2dataset (from a local HTTP server on 127.0.0.1) loads."""

from __future__ import annotations

import functools
import http.server
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mmcurate.data import detect_format, load_pairs, open_image

pytest.importorskip("img2dataset", reason="interop test needs img2dataset (see Makefile: installed "
                                          "with --no-deps and its real imports)")

pytestmark = pytest.mark.slow

_RUN = """
import sys
from img2dataset import download
download(url_list=sys.argv[1], output_folder=sys.argv[2], input_format="csv", url_col="url",
         caption_col="caption", save_additional_columns=["source_id"], output_format="webdataset",
         processes_count=1, thread_count=4, image_size=64, resize_mode="keep_ratio",
         number_sample_per_shard=4, timeout=5, retries=0, enable_wandb=False, extract_exif=False,
         distributor="multiprocessing")
"""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (48, 80, 3), dtype=np.uint8)).save(site / f"{i}.jpg")
    (site / "broken.jpg").write_bytes(b"this is not a jpeg")
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _download(server: str, tmp_path: Path) -> tuple[Path, list[str], list[str]]:
    """Run the real img2dataset over 6 good URLs, a missing one and a broken one (shards of 4);
    returns the shard folder, the URLs and the captions."""
    urls = [f"{server}/{i}.jpg" for i in range(6)] + [f"{server}/missing.jpg", f"{server}/broken.jpg"]
    captions = [f"random picture {i}" for i in range(6)] + ["not there", "not an image"]
    pd.DataFrame({"url": urls, "caption": captions, "source_id": [f"s{i}" for i in range(8)]}).to_csv(
        tmp_path / "urls.csv", index=False)
    out = tmp_path / "shards"
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "disabled"}
    proc = subprocess.run([sys.executable, "-c", _RUN, str(tmp_path / "urls.csv"), str(out)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, urls, captions


def test_img2dataset_shards_load(server, tmp_path):
    out, urls, captions = _download(server, tmp_path)
    assert sorted(p.name for p in out.glob("*.tar")) == ["00000.tar", "00001.tar"]
    assert detect_format(out) == "img2dataset"
    r = load_pairs(out)
    assert sorted(r.pairs["caption"]) == sorted(captions[:6])
    assert sorted(r.pairs["source_id"]) == [f"s{i}" for i in range(6)]
    assert len(r.rejects) == 2 and set(r.rejects["source"]) == {str(out / "00001.parquet")}
    table = pd.read_parquet(out / "00001.parquet")  # row order inside a shard follows the downloads
    assert sorted(table["url"].iloc[r.rejects["row"] - 1]) == sorted(urls[6:])
    assert r.rejects["detail"].str.contains("img2dataset did not fetch").all()
    assert r.rejects["detail"].str.contains("missing.jpg").any()
    im = open_image(r.pairs["image"].iloc[0], image_root=out)
    assert im.size == (107, 64)  # img2dataset resized the 80x48 original (keep_ratio: short side 64)
    _clip_retrieval_metadata_exports(out, tmp_path)


def _accepted_exports(proj, tmp_path: Path):
    """Every pair accepted in one round, then exported as csv, jsonl and parquet: yields
    ``(fmt, curated table read back)``."""
    from mmcurate.export import export_curated

    ids = proj.pairs["pair_id"].tolist()
    proj.ledger.create_round(ids, strategy="test", params={}, model={})
    for pid in ids:
        proj.ledger.record(pid, "accept")
    for fmt in ("csv", "jsonl", "parquet"):
        path = export_curated(proj, tmp_path / fmt, fmt=fmt, threshold=None).curated_path
        yield fmt, (pd.read_csv(path) if fmt == "csv" else pd.read_json(path, lines=True, dtype=False)
                    if fmt == "jsonl" else pd.read_parquet(path))


def _clip_retrieval_metadata_exports(out, tmp_path):
    """clip-retrieval's inference over img2dataset shards keeps img2dataset's metadata columns
    (``status`` among them) beside ``image_path``: such a folder imports and exports in every table
    format, img2dataset's values kept as ``source_status``."""
    from mmcurate.embed.importer import write_embedding_folder
    from mmcurate.project import create_project

    meta = pd.concat([pd.read_parquet(p) for p in sorted(out.glob("*.parquet"))], ignore_index=True)
    meta = meta[meta["status"] == "success"].reset_index(drop=True)
    assert {"key", "url", "caption", "status", "error_message", "width", "height"} <= set(meta.columns)
    vectors = np.random.default_rng(0).normal(size=(len(meta), 8)).astype(np.float32)
    write_embedding_folder(tmp_path / "emb", vectors, vectors, meta)
    proj = create_project(tmp_path / "proj", embeddings=tmp_path / "emb")
    assert proj.config["renamed_columns"] == {"status": "source_status"}
    for fmt, curated in _accepted_exports(proj, tmp_path):
        assert curated.columns.is_unique and len(curated) == len(meta)
        assert set(curated["status"]) == {"accepted"} and set(curated["source_status"]) == {"success"}
        assert sorted(curated["url"]) == sorted(meta["url"])
        assert sorted(curated["width"]) == sorted(meta["width"])  # img2dataset writes it as float64
        if fmt == "parquet":
            assert curated["width"].dtype == meta["width"].dtype


def _clip_retrieval_numpy_writer():
    """clip-retrieval's own ``NumpyWriter`` (``clip_retrieval/clip_inference/writer.py``), loaded
    from the installed distribution by its path: the package's ``__init__`` imports its servers
    (flask, torch, faiss, open_clip), which the writer does not use. The Makefile installs
    clip-retrieval with ``--no-deps``, as it does img2dataset."""
    try:
        dist = importlib.metadata.distribution("clip-retrieval")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("interop test needs clip-retrieval (see Makefile: installed with --no-deps)")
    path = Path(str(dist.locate_file("clip_retrieval/clip_inference/writer.py")))
    spec = importlib.util.spec_from_file_location("clip_retrieval_writer", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.NumpyWriter


def test_clip_retrieval_writer_over_img2dataset_shards_imports_and_exports(server, tmp_path):
    """What clip-retrieval's inference writes over img2dataset shards (its webdataset reader hands
    the writer each sample's key, caption and .json; the writer flattens the JSON into metadata
    columns, ``status`` among them) imports, and exports in every table format with img2dataset's
    values kept as ``source_status``."""
    from mmcurate.project import create_project

    numpy_writer = _clip_retrieval_numpy_writer()
    out, urls, _ = _download(server, tmp_path)
    samples = []  # (key, caption, json text), as clip-retrieval's webdataset reader yields them
    for shard in sorted(out.glob("*.tar")):
        with tarfile.open(shard) as tar:
            files = {m.name: tar.extractfile(m) for m in tar.getmembers() if m.isfile()}
            for name in sorted(n for n in files if n.endswith(".json")):
                key = name[: -len(".json")]
                samples.append((key, files[key + ".txt"].read().decode(), files[name].read().decode()))
    assert len(samples) == 6
    rng = np.random.default_rng(0)
    image, text = (rng.normal(size=(6, 8)).astype(np.float32) for _ in range(2))
    writer = numpy_writer(partition_id=0, output_folder=str(tmp_path / "emb"), enable_text=True,
                          enable_image=True, enable_metadata=True, output_partition_count=1)
    writer({"image_embs": image, "text_embs": text, "image_filename": [k for k, _, _ in samples],
            "text": [c for _, c, _ in samples], "metadata": [m for _, _, m in samples]})
    writer.flush()
    written = pd.read_parquet(tmp_path / "emb" / "metadata" / "metadata_0.parquet")
    assert {"image_path", "caption", "url", "status", "key"} <= set(written.columns)

    proj = create_project(tmp_path / "proj", embeddings=tmp_path / "emb")
    assert proj.config["renamed_columns"]["status"] == "source_status"
    assert len(proj.pairs) == 6 and proj.rejects.empty
    for _, curated in _accepted_exports(proj, tmp_path):
        assert curated.columns.is_unique and len(curated) == 6
        assert set(curated["status"]) == {"accepted"} and set(curated["source_status"]) == {"success"}
        assert sorted(curated["url"]) == sorted(urls[:6])
