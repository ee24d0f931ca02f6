"""The bad-input corpus: every kind of broken source, embedding folder, labels file and arrival.

Each :class:`Case` writes its input under a fresh folder and names the CLI command that reads it;
its ``expect`` is the exact outcome: :class:`Fails` (exit code 2, ``mmcurate: error:`` and the
named problem on stderr) or :class:`Rejects` / :class:`Accepts` (exit code 0 and exactly these
reject rows: file, 1-based row, reason). ``test_corpus.py`` runs them through ``mmcurate.cli.main``.

``command`` is one of ``init`` (a new project; a failing init is run with ``--force`` over an
existing project, which must stay unchanged), ``init-emb`` (``init --embeddings``), ``label``
(``label --import`` into a copy of the labelled embeddings project), ``add-emb`` (``add
--embeddings`` to that project) and ``add`` (``add --pairs`` to an embedded image project).
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


@dataclass(frozen=True)
class Fails:
    """Exit code 2 with ``match`` in the message; nothing stored before changes."""

    match: str


@dataclass(frozen=True)
class Rejects:
    """Exit code 0; the new reject rows are exactly ``rows`` ``(file name, row, reason)``."""

    rows: tuple[tuple[str, int | None, str], ...]
    n_pairs: int | None = None
    detail: str | None = None  # a text every new reject's detail contains


@dataclass(frozen=True)
class Accepts:
    """Exit code 0, no reject rows, ``n_pairs`` new pairs and ``check(pairs)`` holds."""

    n_pairs: int
    check: Callable[[pd.DataFrame], bool] | None = None


@dataclass(frozen=True)
class Case:
    name: str
    area: str
    command: str
    build: Callable[[Workspace], list[str]]
    expect: Fails | Rejects | Accepts


@dataclass
class Workspace:
    """Helpers writing one case's input under ``dir``."""

    dir: Path
    image_root: Path | None = None  # the project's, for ``add --pairs`` cases

    def png(self, rel: str, colour=(200, 30, 30)) -> Path:
        path = self.dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), colour).save(path)
        return path

    def write(self, rel: str, data: str | bytes) -> Path:
        path = self.dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        return path

    def table(self, rel: str, text: str, *, images: tuple[str, ...] = ("img/a.png", "img/b.png")) -> str:
        for name in images:
            self.png(name)
        return str(self.write(rel, text))

    def tar(self, rel: str, members: dict[str, bytes]) -> Path:
        path = self.dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(path, "w") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return path

    def embeddings(self, rel: str, shards: list[tuple[np.ndarray, np.ndarray, pd.DataFrame]]) -> str:
        root = self.dir / rel
        for sub in ("img_emb", "text_emb", "metadata"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        for i, (img, txt, meta) in enumerate(shards):
            np.save(root / "img_emb" / f"img_emb_{i}.npy", img)
            np.save(root / "text_emb" / f"text_emb_{i}.npy", txt)
            meta.to_parquet(root / "metadata" / f"metadata_{i}.parquet", index=False)
        return str(root)


def png_bytes(colour=(10, 120, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, format="PNG")
    return buf.getvalue()


def vectors(n: int, d: int = 8, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def meta(n: int, prefix: str = "k", **extra) -> pd.DataFrame:
    return pd.DataFrame({"key": [f"{prefix}{i}" for i in range(n)],
                         "caption": [f"caption {prefix}{i}" for i in range(n)], **extra})


GOOD = "id,image,caption\na,img/a.png,a red square\n"


def _csv(text: str, name: str = "pairs.csv", **kw) -> Callable[[Workspace], list[str]]:
    return lambda w: ["--pairs", w.table(name, text, **kw)]


def _parquet(df: pd.DataFrame) -> Callable[[Workspace], list[str]]:
    def build(w: Workspace) -> list[str]:
        w.png("img/a.png")
        w.png("img/b.png")
        path = w.dir / "pairs.parquet"
        if "map_column" in df.attrs:  # a Parquet map column, as Spark and Arrow writers make
            import pyarrow as pa
            import pyarrow.parquet as pq

            column = df.attrs["map_column"]
            table = pa.Table.from_pandas(df.drop(columns=[column]), preserve_index=False)
            table = table.append_column(column, pa.array(df[column].tolist(),
                                                         type=pa.map_(pa.string(), pa.string())))
            pq.write_table(table, path)
        else:
            df.to_parquet(path, index=False)
        return ["--pairs", str(path)]
    return build


def _jsonl(lines: list[str]) -> Callable[[Workspace], list[str]]:
    return lambda w: ["--pairs", w.table("pairs.jsonl", "\n".join(lines) + "\n")]


def _wds(members: dict[str, bytes], name: str = "shard.tar") -> Callable[[Workspace], list[str]]:
    return lambda w: ["--pairs", str(w.tar(name, members))]


def _folder(files: dict[str, bytes | None]) -> Callable[[Workspace], list[str]]:
    def build(w: Workspace) -> list[str]:
        (w.dir / "folder").mkdir()
        for name, data in files.items():
            if data is None:
                w.png(f"folder/{name}")
            else:
                w.write(f"folder/{name}", data)
        return ["--pairs", str(w.dir / "folder")]
    return build


def _outside(w: Workspace) -> list[str]:
    outside = w.dir / "outside"
    outside.mkdir()
    w.tar("outside/evil.tar", {"secret.png": png_bytes()})
    w.png("outside/secret.png")
    (w.dir / "data").mkdir()
    (w.dir / "data" / "link.png").symlink_to(outside / "secret.png")
    w.png("data/img/a.png")
    rows = ["id,image,caption", "a,img/a.png,fine", "b,../outside/secret.png,dotdot",
            f"c,{outside / 'secret.png'},absolute", "d,../outside/evil.tar::secret.png,tar member",
            "e,link.png,symlink"]
    return ["--pairs", str(w.write("data/pairs.csv", "\n".join(rows) + "\n"))]


def _emb(shards: Callable[[], list[tuple[np.ndarray, np.ndarray, pd.DataFrame]]]):
    return lambda w: ["--embeddings", w.embeddings("emb", shards())]


def _emb_raw(write: Callable[[Path], None]):
    def build(w: Workspace) -> list[str]:
        w.embeddings("emb", [(vectors(3), vectors(3, seed=1), meta(3))])
        write(w.dir / "emb")
        return ["--embeddings", str(w.dir / "emb")]
    return build


def _label(text: str, name: str = "decisions.csv", fmt: str = "table", extra=()):
    return lambda w: ["--import", str(w.write(name, text)), "--from", fmt, *extra]


def _ls(task_result: list[dict], pair_id: str = "e0") -> str:
    return json.dumps([{"id": 1, "data": {"pair_id": pair_id},
                        "annotations": [{"result": task_result, "completed_by": {"email": "r@x"}}]}])


def _choice(value: str) -> list[dict]:
    return [{"from_name": "decision", "type": "choices", "value": {"choices": [value]}}]


CSV_CASES = [
    Case("csv_missing_caption_column", "csv", "init", _csv("id,image\na,img/a.png\n"),
         Fails("missing column(s) ['caption']")),
    Case("csv_duplicate_header_column", "csv", "init",
         _csv("id,image,caption,caption\na,img/a.png,x,y\n"), Fails("['caption'] more than once")),
    Case("csv_header_only", "csv", "init", _csv("id,image,caption\n"), Fails("holds no pairs")),
    Case("csv_empty_file", "csv", "init", _csv(""), Fails("is empty")),
    Case("csv_file_missing", "csv", "init", lambda w: ["--pairs", str(w.dir / "nope.csv")],
         Fails("does not exist")),
    Case("csv_unknown_suffix", "csv", "init", _csv(GOOD, name="pairs.xlsx"),
         Fails("cannot tell the format")),
    Case("csv_bom_before_header", "csv", "init", _csv("\ufeff" + GOOD + "b,img/b.png,blue\n"),
         Accepts(2, lambda p: sorted(p["pair_id"]) == ["a", "b"] and "\ufeffid" not in p.columns)),
    Case("csv_wrong_field_count", "csv", "init", _csv(GOOD + "b,img/b.png\n"),
         Rejects((("pairs.csv", 2, "malformed_row"),), n_pairs=1, detail="2 fields, header has 3")),
    Case("csv_blank_lines_keep_row_numbers", "csv", "init",
         _csv("id,image,caption\n\na,img/a.png,ok\n\n\nb,img/missing.png,gone\n"),
         Rejects((("pairs.csv", 5, "missing_file"),), n_pairs=1)),
    Case("csv_missing_image_file", "csv", "init", _csv(GOOD + "b,img/zzz.png,x\n"),
         Rejects((("pairs.csv", 2, "missing_file"),), n_pairs=1, detail="does not exist")),
    Case("csv_paths_escaping_root", "csv", "init", _outside,
         Rejects((("pairs.csv", 2, "outside_root"), ("pairs.csv", 3, "outside_root"),
                  ("pairs.csv", 4, "outside_root"), ("pairs.csv", 5, "outside_root")), n_pairs=1)),
    Case("csv_directory_named_png", "csv", "init",
         lambda w: (w.dir.joinpath("img/dir.png").mkdir(parents=True),
                    ["--pairs", w.table("pairs.csv", GOOD + "b,img/dir.png,x\n")])[1],
         Rejects((("pairs.csv", 2, "missing_file"),), n_pairs=1, detail="is a directory")),
    Case("csv_empty_caption", "csv", "init", _csv(GOOD + "b,img/b.png,   \n"),
         Rejects((("pairs.csv", 2, "empty_caption"),), n_pairs=1)),
    Case("csv_empty_image_value", "csv", "init", _csv(GOOD + "b,,caption\n"),
         Rejects((("pairs.csv", 2, "missing_value"),), n_pairs=1)),
    Case("csv_non_utf8_caption", "csv", "init",
         lambda w: ["--pairs", w.table("pairs.csv", (GOOD + "b,img/b.png,caf").encode() + b"\xe9\n")],
         Rejects((("pairs.csv", 2, "non_utf8_caption"),), n_pairs=1)),
    Case("csv_duplicate_id", "csv", "init", _csv(GOOD + "a,img/b.png,other\n"),
         Rejects((("pairs.csv", 2, "duplicate_id"),), n_pairs=1, detail="same id as row 1")),
    Case("csv_corrupt_png", "csv", "init",
         lambda w: (w.write("img/c.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40),
                    ["--pairs", w.table("pairs.csv", GOOD + "c,img/c.png,x\n")])[1],
         Rejects((("pairs.csv", 2, "corrupt_image"),), n_pairs=1)),
    Case("csv_truncated_png", "csv", "init",
         lambda w: (w.write("img/t.png", png_bytes()[:50]),
                    ["--pairs", w.table("pairs.csv", GOOD + "t,img/t.png,x\n")])[1],
         Rejects((("pairs.csv", 2, "corrupt_image"),), n_pairs=1, detail="truncated")),
    Case("csv_text_file_named_png", "csv", "init",
         lambda w: (w.write("img/n.png", "not an image"),
                    ["--pairs", w.table("pairs.csv", GOOD + "n,img/n.png,x\n")])[1],
         Rejects((("pairs.csv", 2, "corrupt_image"),), n_pairs=1, detail="not an image PIL can read")),
    Case("csv_tar_member_missing", "csv", "init",
         lambda w: (w.tar("s.tar", {"x.png": png_bytes()}),
                    ["--pairs", w.table("pairs.csv", GOOD + "m,s.tar::y.png,x\n")])[1],
         Rejects((("pairs.csv", 2, "missing_file"),), n_pairs=1)),
    Case("csv_tar_member_empty", "csv", "init",
         lambda w: (w.tar("s.tar", {"x.png": png_bytes()}),
                    ["--pairs", w.table("pairs.csv", GOOD + "m,s.tar::,x\n")])[1],
         Rejects((("pairs.csv", 2, "missing_value"),), n_pairs=1)),
    Case("csv_unclosed_quote", "csv", "init", _csv(GOOD + 'b,img/b.png,"never closed\nc,img/b.png,x\n'),
         Fails("is not valid CSV")),
    Case("csv_text_after_closing_quote", "csv", "init", _csv(GOOD + 'b,img/b.png,"quoted"tail\n'),
         Fails("is not valid CSV (line 3)")),
    Case("tsv_wrong_field_count", "tsv", "init",
         lambda w: ["--pairs", w.table("pairs.tsv", "id\timage\tcaption\na\timg/a.png\tok\nb\timg/b.png\n")],
         Rejects((("pairs.tsv", 2, "malformed_row"),), n_pairs=1)),
]

JSONL_CASES = [
    Case("jsonl_malformed_line", "jsonl", "init",
         _jsonl(['{"id": "a", "image": "img/a.png", "caption": "ok"}', '{"id": "b", oops']),
         Rejects((("pairs.jsonl", 2, "malformed_row"),), n_pairs=1, detail="malformed JSON")),
    Case("jsonl_line_not_object", "jsonl", "init",
         _jsonl(['{"id": "a", "image": "img/a.png", "caption": "ok"}', '["img/b.png", "x"]']),
         Rejects((("pairs.jsonl", 2, "malformed_row"),), n_pairs=1, detail="not a JSON object")),
    Case("jsonl_null_ids", "jsonl", "init",
         _jsonl(['{"id": null, "image": "img/a.png", "caption": "one"}',
                 '{"id": null, "image": "img/b.png", "caption": "two"}',
                 '{"id": "c", "image": "img/b.png", "caption": "three"}']),
         Accepts(3, lambda p: not ({"nan", "None"} & set(p["pair_id"])) and "c" in set(p["pair_id"]))),
    Case("jsonl_list_caption", "jsonl", "init",
         _jsonl(['{"id": "a", "image": "img/a.png", "caption": "ok"}',
                 '{"id": "b", "image": "img/b.png", "caption": ["list", "caption"]}']),
         Rejects((("pairs.jsonl", 2, "non_string_caption"),), n_pairs=1, detail="expected text, got list")),
    Case("jsonl_number_caption", "jsonl", "init",
         _jsonl(['{"id": "a", "image": "img/a.png", "caption": 12345}',
                 '{"id": "b", "image": "img/b.png", "caption": "fine"}']),
         Rejects((("pairs.jsonl", 1, "non_string_caption"),), n_pairs=1)),
    Case("jsonl_bool_caption", "jsonl", "init",
         _jsonl(['{"id": "a", "image": "img/a.png", "caption": true}',
                 '{"id": "b", "image": "img/b.png", "caption": "fine"}']),
         Rejects((("pairs.jsonl", 1, "non_string_caption"),), n_pairs=1)),
    Case("jsonl_object_image", "jsonl", "init",
         _jsonl(['{"id": "a", "image": {"path": "img/a.png"}, "caption": "x"}',
                 '{"id": "b", "image": "img/b.png", "caption": "fine"}']),
         Rejects((("pairs.jsonl", 1, "non_string_image"),), n_pairs=1)),
    Case("jsonl_caption_key_absent", "jsonl", "init",
         _jsonl(['{"id": "a", "image": "img/a.png"}', '{"id": "b", "image": "img/b.png", "caption": "x"}']),
         Rejects((("pairs.jsonl", 1, "empty_caption"),), n_pairs=1)),
    Case("jsonl_blank_lines_keep_line_numbers", "jsonl", "init",
         _jsonl(['{"id": "a", "image": "img/a.png", "caption": "ok"}', "", "",
                 '{"id": "b", "image": "img/nope.png", "caption": "x"}']),
         Rejects((("pairs.jsonl", 4, "missing_file"),), n_pairs=1)),
]

PARQUET_CASES = [
    Case("parquet_nan_ids", "parquet", "init",
         _parquet(pd.DataFrame({"id": [np.nan, np.nan, 7.0], "image": ["img/a.png", "img/b.png", "img/a.png"],
                                "caption": ["one", "two", "three"]})),
         Accepts(3, lambda p: "nan" not in set(p["pair_id"]) and "7" in set(p["pair_id"]))),
    Case("parquet_none_and_na_ids", "parquet", "init",
         _parquet(pd.DataFrame({"id": pd.array([None, pd.NA, "c"], dtype="string"),
                                "image": ["img/a.png", "img/b.png", "img/a.png"],
                                "caption": ["one", "two", "three"]})),
         Accepts(3, lambda p: not ({"nan", "None", "<NA>"} & set(p["pair_id"])))),
    Case("parquet_int_captions", "parquet", "init",
         _parquet(pd.DataFrame({"id": ["a", "b"], "image": ["img/a.png", "img/b.png"], "caption": [1, 2]})),
         Rejects((("pairs.parquet", 1, "non_string_caption"), ("pairs.parquet", 2, "non_string_caption")),
                 n_pairs=0)),
    Case("parquet_null_caption", "parquet", "init",
         _parquet(pd.DataFrame({"id": ["a", "b"], "image": ["img/a.png", "img/b.png"],
                                "caption": ["x", None]})),
         Rejects((("pairs.parquet", 2, "empty_caption"),), n_pairs=1)),
    Case("parquet_missing_column", "parquet", "init",
         _parquet(pd.DataFrame({"id": ["a"], "img": ["img/a.png"], "caption": ["x"]})),
         Fails("missing column(s) ['image']")),
    Case("parquet_not_parquet", "parquet", "init",
         lambda w: ["--pairs", str(w.write("pairs.parquet", b"PAR1 but not really"))],
         Fails("is not a readable Parquet file")),
]

WDS_CASES = [
    Case("wds_member_escaping_with_dotdot", "webdataset", "init",
         _wds({"ok.png": png_bytes(), "ok.txt": b"fine", "../evil.png": png_bytes(), "../evil.txt": b"x"}),
         Rejects((("shard.tar", 2, "malformed_row"),), n_pairs=1, detail="not a plain relative name")),
    Case("wds_absolute_member", "webdataset", "init",
         _wds({"ok.png": png_bytes(), "ok.txt": b"fine", "/abs/x.png": png_bytes(), "/abs/x.txt": b"x"}),
         Rejects((("shard.tar", 2, "malformed_row"),), n_pairs=1)),
    Case("wds_key_splits_at_first_dot", "webdataset", "init",
         _wds({"c.png": png_bytes(), "c.txt": b"a caption", "c.cls.txt": b"3"}),
         Accepts(1, lambda p: p["pair_id"].tolist() == ["c"])),
    Case("wds_sample_without_image", "webdataset", "init",
         _wds({"ok.png": png_bytes(), "ok.txt": b"fine", "lonely.txt": b"no image"}),
         Rejects((("shard.tar", 2, "malformed_row"),), n_pairs=1, detail="has no jpg/png/webp member")),
    Case("wds_corrupt_member", "webdataset", "init",
         _wds({"ok.png": png_bytes(), "ok.txt": b"fine", "bad.png": b"\x89PNG broken", "bad.txt": b"x"}),
         Rejects((("shard.tar", 2, "corrupt_image"),), n_pairs=1)),
    Case("wds_not_a_tar", "webdataset", "init",
         lambda w: ["--pairs", str(w.write("shard.tar", b"plain text, no tar"))],
         Fails("is not a readable tar file")),
    Case("wds_brace_list_missing_shard", "webdataset", "init",
         lambda w: (w.tar("s-0.tar", {"a.png": png_bytes(), "a.txt": b"x"}),
                    ["--pairs", str(w.dir / "s-{0..1}.tar")])[1],
         Fails("s-1.tar does not exist")),
    Case("wds_empty_tar", "webdataset", "init", _wds({}), Fails("holds no pairs")),
]

FOLDER_CASES = [
    Case("folder_missing_caption_file", "folder", "init",
         _folder({"a.png": None, "a.txt": b"fine", "b.png": None}),
         Rejects((("folder", 2, "malformed_row"),), n_pairs=1, detail="no caption file b.txt")),
    Case("folder_empty_caption_file", "folder", "init",
         _folder({"a.png": None, "a.txt": b"fine", "b.png": None, "b.txt": b"\n  \n"}),
         Rejects((("folder", 2, "empty_caption"),), n_pairs=1)),
    Case("folder_non_utf8_caption", "folder", "init",
         _folder({"a.png": None, "a.txt": b"fine", "b.png": None, "b.txt": b"caf\xe9"}),
         Rejects((("folder", 2, "non_utf8_caption"),), n_pairs=1)),
    Case("folder_corrupt_image", "folder", "init",
         _folder({"a.png": None, "a.txt": b"fine", "b.png": b"garbage", "b.txt": b"x"}),
         Rejects((("folder", 2, "corrupt_image"),), n_pairs=1)),
    Case("folder_without_images", "folder", "init", _folder({"notes.txt": b"nothing here"}),
         Fails("holds no pairs")),
]

EMB_CASES = [
    Case("emb_image_text_dims_differ", "embeddings", "init-emb",
         _emb(lambda: [(vectors(3, 8), vectors(3, 16), meta(3))]), Fails("dimension differs")),
    Case("emb_shard_not_npy", "embeddings", "init-emb",
         _emb_raw(lambda root: (root / "img_emb" / "img_emb_0.npy").write_text("not numpy")),
         Fails("img_emb_0.npy is not a readable .npy array")),
    Case("emb_only_zero_row_shard", "embeddings", "init-emb",
         _emb(lambda: [(np.zeros((0, 8), np.float32), np.zeros((0, 8), np.float32), meta(0))]),
         Fails("holds no usable pairs")),
    Case("emb_zero_row_shard_among_good", "embeddings", "init-emb",
         _emb(lambda: [(vectors(3), vectors(3, seed=1), meta(3)),
                       (np.zeros((0, 8), np.float32), np.zeros((0, 8), np.float32), meta(0, "z"))]),
         Accepts(3)),
    Case("emb_row_counts_differ", "embeddings", "init-emb",
         _emb(lambda: [(vectors(3), vectors(2, seed=1), meta(3))]), Fails("row counts differ")),
    Case("emb_missing_metadata_folder", "embeddings", "init-emb",
         _emb_raw(lambda root: [p.unlink() for p in (root / "metadata").iterdir()]
                  and (root / "metadata").rmdir()), Fails("missing metadata/")),
    Case("emb_shard_numbers_differ", "embeddings", "init-emb",
         _emb_raw(lambda root: (root / "text_emb" / "text_emb_0.npy").rename(
             root / "text_emb" / "text_emb_5.npy")),
         Fails("shard numbers differ")),
    Case("emb_one_dimensional", "embeddings", "init-emb",
         _emb(lambda: [(vectors(3)[:, 0].copy(), vectors(3)[:, 0].copy(), meta(3))]), Fails("must be 2-D")),
    Case("emb_no_caption_column", "embeddings", "init-emb",
         _emb(lambda: [(vectors(2), vectors(2, seed=1), pd.DataFrame({"key": ["a", "b"]}))]),
         Fails("has no 'caption' column")),
    Case("emb_metadata_not_parquet", "embeddings", "init-emb",
         _emb_raw(lambda root: (root / "metadata" / "metadata_0.parquet").write_text("csv,really")),
         Fails("metadata_0.parquet is not a readable Parquet file")),
    Case("emb_non_finite_vector", "embeddings", "init-emb",
         _emb(lambda: [(np.where(np.arange(3)[:, None] == 1, np.nan, vectors(3)).astype(np.float32),
                        vectors(3, seed=1), meta(3))]),
         Rejects((("metadata_0.parquet", 2, "non_finite_vector"),), n_pairs=2)),
    Case("emb_list_caption", "embeddings", "init-emb",
         _emb(lambda: [(vectors(1), vectors(1, seed=1), pd.DataFrame({"key": ["a"], "caption": [12]})),
                       (vectors(2), vectors(2, seed=1), meta(2))]),
         Rejects((("metadata_0.parquet", 1, "non_string_caption"),), n_pairs=2, detail="expected text")),
    Case("emb_null_keys", "embeddings", "init-emb",
         _emb(lambda: [(vectors(3), vectors(3, seed=1),
                        pd.DataFrame({"key": [None, None, "c"], "caption": ["one", "two", "three"]}))]),
         Accepts(3, lambda p: not ({"None", "nan"} & set(p["pair_id"])))),
]

# the labelled embeddings project: pairs e0..e19; round 1 queued e0..e3, round 2 e4..e7
LABEL_CASES = [
    Case("labels_unknown_pair", "labels-table", "label", _label("pair_id,decision\nzzz,accept\n"),
         Fails("unknown pair_id 'zzz'")),
    Case("labels_bad_decision", "labels-table", "label", _label("pair_id,decision\ne0,maybe\n"),
         Fails("'maybe'")),
    Case("labels_fix_without_caption", "labels-table", "label", _label("pair_id,decision,caption\ne0,fix,\n"),
         Fails("row 1")),
    Case("labels_missing_columns", "labels-table", "label", _label("id,verdict\ne0,accept\n"),
         Fails("['pair_id', 'decision']")),
    Case("labels_pair_in_no_batch", "labels-table", "label",
         _label("pair_id,decision\ne0,accept\ne15,accept\n"),
         Fails("pair 'e15' is in no review batch")),
    Case("labels_pair_not_in_given_round", "labels-table", "label",
         _label("pair_id,decision\ne5,accept\n", extra=("--round", "1")),
         Fails("queued in round 2, not round 1")),
    Case("labels_non_utf8", "labels-table", "label",
         lambda w: ["--import", str(w.write("d.csv", b"pair_id,decision,caption\ne0,fix,caf\xe9\n"))],
         Fails("not UTF-8")),
    Case("labels_bad_timestamp", "labels-table", "label",
         _label("pair_id,decision,timestamp\ne0,accept,yesterday-ish\n"), Fails("row 1")),
    Case("labels_unknown_round", "labels-table", "label",
         _label("pair_id,decision\ne0,accept\n", extra=("--round", "9")), Fails("round 9 does not exist")),
    Case("labels_unsupported_suffix", "labels-table", "label", _label("pair_id,decision\n", name="d.txt"),
         Fails("unsupported file type '.txt'")),
    Case("label_studio_not_json", "label-studio", "label", _label("{not json", "tasks.json", "label-studio"),
         Fails("is not a Label Studio JSON export")),
    Case("label_studio_unknown_choice", "label-studio", "label",
         _label(_ls(_choice("Maybe")), "tasks.json", "label-studio"), Fails("'maybe' is not one of")),
    Case("label_studio_task_without_pair_id", "label-studio", "label",
         _label(_ls(_choice("accept"), pair_id=""), "tasks.json", "label-studio"), Fails("no data.pair_id")),
    Case("label_studio_pair_in_no_batch", "label-studio", "label",
         _label(_ls(_choice("accept"), pair_id="e18"), "tasks.json", "label-studio"),
         Fails("pair 'e18' is in no review batch")),
    Case("label_studio_task_not_an_object", "label-studio", "label",
         _label("[1, 2]", "tasks.json", "label-studio"),
         Fails("task 1, column 'data': not a Label Studio task")),
    Case("label_studio_error_names_the_task_not_the_row", "label-studio", "label",
         _label(json.dumps([{"id": 56, "data": {"pair_id": "e1"}, "annotations": []},
                            {"id": 57, "data": {"pair_id": "e18"},
                             "annotations": [{"result": _choice("accept"), "completed_by": 3}]}]),
                "tasks.json", "label-studio"),
         Fails("task 2 (Label Studio id 57), column 'pair_id': pair 'e18' is in no review batch")),
    Case("label_studio_export_missing", "label-studio", "label",
         lambda w: ["--import", str(w.dir / "nowhere.json"), "--from", "label-studio"],
         Fails("nowhere.json: cannot read the Label Studio export (No such file or directory)")),
    Case("fiftyone_samples_not_a_list", "fiftyone", "label",
         _label('{"samples": 5}', "samples.json", "fiftyone"), Fails("expected a list of samples")),
    Case("fiftyone_two_decision_tags", "fiftyone", "label",
         _label("pair_id,tags\ne0,\"accept,reject\"\n", "labels.csv", "fiftyone"),
         Fails("one tag per sample")),
    Case("fiftyone_sample_without_pair_id", "fiftyone", "label",
         _label("pair_id,tags\n,accept\n", "labels.csv", "fiftyone"), Fails("no pair_id field")),
    Case("fiftyone_not_json", "fiftyone", "label", _label("{oops", "samples.json", "fiftyone"),
         Fails("is not a FiftyOne CSV/samples export")),
]

ADD_CASES = [
    Case("add_emb_other_dimension", "add", "add-emb",
         _emb(lambda: [(vectors(2, 16), vectors(2, 16, seed=1), meta(2, "n"))]), Fails("16-d vectors")),
    Case("add_emb_existing_key", "add", "add-emb",
         _emb(lambda: [(vectors(2), vectors(2, seed=1), meta(2, "e"))]),
         Rejects((("metadata_0.parquet", 1, "duplicate_id"), ("metadata_0.parquet", 2, "duplicate_id")),
                 n_pairs=0, detail="already in the project")),
    Case("add_emb_non_finite", "add", "add-emb",
         _emb(lambda: [(np.where(np.arange(2)[:, None] == 0, np.inf, vectors(2)).astype(np.float32),
                        vectors(2, seed=1), meta(2, "n"))]),
         Rejects((("metadata_0.parquet", 1, "non_finite_vector"),), n_pairs=1)),
    Case("add_emb_file_not_folder", "add", "add-emb",
         lambda w: ["--embeddings", str(w.write("x.csv", GOOD))], Fails("must be an embedding folder")),
    Case("add_pairs_outside_root", "add", "add",
         lambda w: (w.tar("outside/evil.tar", {"s.png": png_bytes()}),
                    ["--pairs", w.table("in/new.csv", "id,image,caption\nn1,../outside/evil.tar::s.png,x\n",
                                        images=())])[1],
         Rejects((("new.csv", 1, "outside_root"),), n_pairs=0)),
    Case("add_pairs_existing_id", "add", "add",
         lambda w: ["--pairs", str(w.write("new.csv", "id,image,caption\np0,img/a.png,again\n")),
                    "--image-root", str(w.image_root)],
         Rejects((("new.csv", 1, "duplicate_id"),), n_pairs=0, detail="already in the project")),
    Case("add_pairs_header_only", "add", "add", _csv("id,image,caption\n", name="new.csv"),
         Fails("holds no pairs")),
    Case("add_pairs_missing_column", "add", "add", _csv("id,caption\nz,x\n", name="new.csv"),
         Fails("missing column(s) ['image']")),
    Case("add_pairs_list_caption", "add", "add",
         lambda w: ["--pairs", str(w.write("new.jsonl",
                                           '{"id": "z", "image": "img/a.png", "caption": [1]}\n')),
                    "--image-root", str(w.image_root)],
         Rejects((("new.jsonl", 1, "non_string_caption"),), n_pairs=0)),
]



def _renamed(pairs: pd.DataFrame, expected: dict[str, object], pair_id: str | None = None) -> bool:
    """Source columns named like mmcurate's own kept as ``source_<name>`` with their values."""
    row = pairs.iloc[0]
    return (all(str(row[k]) == str(v) for k, v in expected.items())
            and (pair_id is None or row["pair_id"] == pair_id))


# source columns named like mmcurate's own (mmcurate.data.columns): renamed source_<name>, never
# dropped, misread as our own (a `_error` value as a malformed row) or crashing
RESERVED_CASES = [
    Case("csv_reserved_column_names", "csv", "init",
         _csv("id,image,caption,status,pair_id,_row,_error,_meta,p_aligned\n"
              "a,img/a.png,a red square,success,theirs,99,boom,m,0.5\n"),
         Accepts(1, lambda p: _renamed(p, {"source_status": "success", "source_pair_id": "theirs",
                                           "source__row": "99", "source__error": "boom",
                                           "source__meta": "m", "source_p_aligned": "0.5"}, "a"))),
    Case("csv_unmapped_image_column_kept", "csv", "init",
         lambda w: ["--pairs", w.table("pairs.csv", "id,file,image,caption\na,img/a.png,theirs,red\n"),
                    "--image-column", "file"],
         Accepts(1, lambda p: _renamed(p, {"image": "img/a.png", "source_image": "theirs"}, "a"))),
    Case("jsonl_reserved_column_names", "jsonl", "init",
         _jsonl(['{"id": "a", "image": "img/a.png", "caption": "red", "_row": 7, "_error": "x", '
                 '"status": "failed_to_download", "reviewer": "them"}']),
         Accepts(1, lambda p: _renamed(p, {"source__row": 7, "source__error": "x",
                                           "source_status": "failed_to_download",
                                           "source_reviewer": "them"}, "a"))),
    Case("parquet_reserved_column_names", "parquet", "init",
         _parquet(pd.DataFrame({"id": ["a"], "image": ["img/a.png"], "caption": ["red"],
                                "pair_id": ["theirs"], "_meta": ["m"], "status": ["success"]})),
         Accepts(1, lambda p: _renamed(p, {"source_pair_id": "theirs", "source__meta": "m",
                                           "source_status": "success"}, "a"))),
    Case("wds_json_reserved_keys", "webdataset", "init",
         _wds({"s1.png": png_bytes(), "s1.txt": b"a cat",
               "s1.json": b'{"status": "success", "_error": "x", "image": "theirs", "url": "http://u"}'}),
         Accepts(1, lambda p: _renamed(p, {"source_status": "success", "source__error": "x",
                                           "source_image": "theirs", "url": "http://u"}, "s1"))),
    Case("emb_reserved_metadata_columns", "embeddings", "init-emb",
         _emb(lambda: [(vectors(2), vectors(2, seed=1),
                        meta(2, status=["success", "success"], pair_id=["x", "y"], image=["i", "j"],
                             _row=[5, 6]))]),
         Accepts(2, lambda p: _renamed(p, {"source_status": "success", "source_pair_id": "x",
                                           "source_image": "i", "source__row": 5}, "k0"))),
    Case("emb_zero_vector", "embeddings", "init-emb",
         _emb(lambda: [(np.where(np.arange(3)[:, None] == 1, 0.0, vectors(3)).astype(np.float32),
                        vectors(3, seed=1), meta(3))]),
         Rejects((("metadata_0.parquet", 2, "zero_vector"),), n_pairs=2, detail="img_emb_0.npy row 2")),
    Case("emb_float64_beyond_float32", "embeddings", "init-emb",
         _emb(lambda: [(vectors(3), np.where(np.arange(3)[:, None] == 2, 1e300,
                                             vectors(3, seed=1).astype(np.float64)), meta(3))]),
         Rejects((("metadata_0.parquet", 3, "non_finite_vector"),), n_pairs=2,
                 detail="text_emb_0.npy row 3")),
]

def _npy_written(kind: str):
    """An embedding folder whose first image shard is rewritten as ``kind``."""
    def write(root: Path) -> None:
        path = root / "img_emb" / "img_emb_0.npy"
        x = vectors(3)
        if kind == "fortran":
            np.save(path, np.asfortranarray(x))
        elif kind == "object":
            np.save(path, x.astype(object), allow_pickle=True)
        else:  # truncated: the header promises 3 rows, the file stops inside the second
            data = path.read_bytes()
            path.write_bytes(data[: len(data) - 40])
    return _emb_raw(write)


def _as_map(df: pd.DataFrame, column: str) -> pd.DataFrame:
    """``df`` whose ``column`` ``_parquet`` writes as a Parquet map (Spark and Arrow writers make them)."""
    df = df.copy()
    df.attrs["map_column"] = column
    return df


LONG_CAPTION = "a very long caption " * 8000  # 160 000 characters: over the csv module's 128 KiB


# issue 23: damaged or surprising inputs that must say so (file, row, reason)
DAMAGE_CASES = [
    Case("csv_caption_over_128_kib", "csv", "init", _csv(GOOD + f"b,img/b.png,{LONG_CAPTION}\n"),
         Accepts(2, lambda p: len(p.set_index("pair_id").loc["b", "caption"]) == len(LONG_CAPTION.strip()))),
    Case("csv_zero_width_caption", "csv", "init", _csv(GOOD + "b,img/b.png,\u200b\u200b\u2060 \n"),
         Rejects((("pairs.csv", 2, "empty_caption"),), n_pairs=1, detail="invisible")),
    Case("jsonl_mixed_type_extra", "jsonl", "init",
         _jsonl(['{"id": "a", "image": "img/a.png", "caption": "x", "extra": 1}',
                 '{"id": "b", "image": "img/b.png", "caption": "y", "extra": "text"}',
                 '{"id": "c", "image": "img/a.png", "caption": "z", "extra": [1, 2]}']),
         Accepts(3, lambda p: p.set_index("pair_id")["extra"].to_dict() == {"a": "1", "b": "text",
                                                                           "c": "[1, 2]"})),
    Case("parquet_list_captions", "parquet", "init",
         _parquet(pd.DataFrame({"id": ["a", "b"], "image": ["img/a.png", "img/b.png"],
                                "caption": [["x", "z"], ["y"]]})),
         Rejects((("pairs.parquet", 1, "non_string_caption"), ("pairs.parquet", 2, "non_string_caption")),
                 n_pairs=0, detail="got list [")),
    Case("parquet_map_column", "parquet", "init",
         _parquet(pd.DataFrame({"id": ["a", "b"], "image": ["img/a.png", "img/b.png"], "caption": ["x", "y"],
                                "meta": [[("k", "v")], [("k2", "v2")]]}).pipe(_as_map, "meta")),
         Accepts(2)),
    Case("emb_fortran_order_npy", "embeddings", "init-emb", _npy_written("fortran"),
         Fails("img_emb_0.npy holds a Fortran-ordered array")),
    Case("emb_object_npy", "embeddings", "init-emb", _npy_written("object"),
         Fails("img_emb_0.npy holds dtype object, not numbers")),
    Case("emb_truncated_npy", "embeddings", "init-emb", _npy_written("truncated"),
         Fails("img_emb_0.npy is truncated")),
    Case("labels_blank_lines_keep_row_numbers", "labels-table", "label",
         _label("pair_id,decision\ne0,accept\n\n\ne1,maybe\n"), Fails("row 4")),
    Case("labels_fix_of_invisible_characters", "labels-table", "label",
         _label("pair_id,decision,caption\ne0,fix,\u200b\u200b\n"), Fails("only invisible characters")),
]


CASES: list[Case] = [*CSV_CASES, *JSONL_CASES, *PARQUET_CASES, *WDS_CASES, *FOLDER_CASES, *EMB_CASES,
                     *LABEL_CASES, *ADD_CASES, *RESERVED_CASES, *DAMAGE_CASES]
