"""The evidence beside each card: planted swaps found, group sizes, imported-embedding projects
(no image files: pair ids and captions only), and the bulk / undo API through Flask's test client."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmcurate.embed.importer import write_embedding_folder
from mmcurate.project import create_project
from mmcurate.review.evidence import EVIDENCE_COLUMNS, pair_evidence
from mmcurate.review.project_app import create_project_app

N, D = 60, 16


@pytest.fixture
def imported(tmp_path):
    """Seeded blob pairs (caption vector near its image), captions of pairs 0 and 1 swapped, and
    pair 59 an exact copy of pair 58 (a duplicate group)."""
    rng = np.random.default_rng(0)
    image = rng.normal(size=(N, D))
    image /= np.linalg.norm(image, axis=1, keepdims=True)
    text = image + 0.15 * rng.normal(size=(N, D))
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    text[[0, 1]] = text[[1, 0]]
    image[59], text[59] = image[58], text[58]
    captions = [f"caption {i}" for i in range(N)]
    captions[0], captions[1] = captions[1], captions[0]
    captions[59] = captions[58]
    meta = pd.DataFrame({"key": [f"e{i}" for i in range(N)], "caption": captions})
    proj = create_project(tmp_path / "proj", embeddings=write_embedding_folder(
        tmp_path / "emb", image.astype(np.float32), text.astype(np.float32), meta))
    proj.duplicates()
    proj.ledger.create_round(["e0", "e5", "e58"], strategy="p_misaligned", params={}, model={},
                             scores=[1.0, 1.0, 0.9],
                             reasons=["p_misaligned=1.000"] * 2 + ["p_misaligned=0.900"])
    return proj


def test_evidence_names_the_swapped_partner(imported):
    ev = pair_evidence(imported, ["e0", "e5", "nope", "e58"]).set_index("pair_id")
    assert list(ev.reset_index().columns) == EVIDENCE_COLUMNS and list(ev.index) == ["e0", "e5", "e58"]
    swapped = ev.loc["e0"]
    assert swapped["caption_pair_id"] == "e1" and swapped["caption_text"] == "caption 0"  # its true caption
    assert swapped["image_pair_id"] == "e1" and swapped["image_caption"] == "caption 0"
    assert swapped["caption_similarity"] > swapped["own_similarity"] + 0.5
    assert swapped["image_similarity"] > swapped["own_similarity"] + 0.5
    clean = ev.loc["e5"]
    assert clean["own_similarity"] > 0.8 and clean["caption_similarity"] < clean["own_similarity"]
    # imported embeddings: the vector-based kinds only
    assert ev.loc["e58", "group_size"] == 2 and ev.loc["e58", "group_kind"] == "near"
    assert ev.loc["e58", "caption_pair_id"] != "e59"  # its own copy is no evidence
    assert ev.loc["e5", "group_size"] == 0


def test_page_without_images_shows_pair_ids_and_captions(imported):
    client = create_project_app(imported, round_id=1, token="tok").test_client()
    html = client.get("/?token=tok").get_data(as_text=True)
    assert "<img" not in html  # no image files in an imported-embedding project
    assert "this image fits another caption better" in html
    assert "this caption fits another image better" in html
    assert "<code>e1</code>" in html and "caption 0" in html
    assert "group of 2 pairs (near): this decision applies to all of them" in html
    assert 'data-suggestion="caption 0"' in html


def test_bulk_accept_and_undo_reach_the_ledger(imported):
    client = create_project_app(imported, round_id=1, token="tok", reviewer="ana").test_client()
    client.get("/?token=tok")
    assert client.post("/api/decision", json={"pair_id": "e0", "decision": "reject"}).status_code == 200
    res = client.post("/api/accept_all", json={"pair_ids": ["e0", "e5", "e58"]}).get_json()
    assert res["accepted"] == ["e5", "e58"] and res["decided"] == 3  # e0 was decided: left as it is
    latest = imported.ledger.decisions().set_index("pair_id")
    assert latest["decision"].to_dict() == {"e0": "reject", "e5": "accept", "e58": "accept"}
    assert set(latest["source"]) == {"web"} and set(latest["reviewer"]) == {"ana"}
    res = client.post("/api/undo", json={"pair_ids": ["e5", "e58"]}).get_json()
    assert res["undone"] == ["e5", "e58"] and res["decided"] == 1
    assert res["cards"] == [{"pair_id": p, "decision": None, "caption": None} for p in ("e5", "e58")]
    assert imported.ledger.decisions()["pair_id"].tolist() == ["e0"]
    assert imported.ledger.resolved()["pair_id"].tolist() == ["e0"]
    assert client.post("/api/undo", json={"pair_ids": ["e0"]}).get_json()["decided"] == 0
    for bad in ({"pair_ids": []}, {"pair_ids": "e0"}, {"pair_ids": ["e0", "zzz"]}, {}):
        assert client.post("/api/undo", json=bad).status_code == 400
        assert client.post("/api/accept_all", json=bad).status_code == 400
    assert imported.ledger.decisions().empty


def test_undo_on_a_second_opinion_card_leaves_the_first_opinion(imported):
    imported.ledger.record("e5", "accept", round_id=1)
    imported.ledger.create_round(["e7"], strategy="p_misaligned", params={}, model={},
                                 second_opinions=[("e5", 0.9, "second opinion: shown again")])
    first = create_project_app(imported, round_id=1, token="tok").test_client()
    again = create_project_app(imported, round_id=2, token="tok").test_client()
    for client in (first, again):
        client.get("/?token=tok")
    assert again.post("/api/decision", json={"pair_id": "e5", "decision": "reject"}).status_code == 200
    assert imported.ledger.resolved().set_index("pair_id").loc["e5", "n_opinions"] == 2
    res = again.post("/api/undo", json={"pair_ids": ["e5"]}).get_json()
    assert res["cards"] == [{"pair_id": "e5", "decision": None, "caption": None}]  # undecided in round 2
    resolved = imported.ledger.resolved().set_index("pair_id")
    assert resolved.loc["e5", "decision"] == "accept" and resolved.loc["e5", "n_opinions"] == 1
    # round 1's card keeps its decision
    assert "decided accept" in first.get("/").get_data(as_text=True)
    assert imported.ledger.batch(1).set_index("pair_id").loc["e5", "decision"] == "accept"
