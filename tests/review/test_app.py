"""The review app through Flask's test client: token, decisions, escaping, images."""

from __future__ import annotations

from mmcurate.review.app import create_app
from mmcurate.review.project_app import image_resolver


def _client(proj, token="tok"):
    app = create_app(pairs=proj.pairs, ledger_path=proj.root / "labels.sqlite", round_id=1,
                     resolve_image=image_resolver(proj), token=token, reviewer="tester")
    return app.test_client()


def test_token_required(review_project):
    c = _client(review_project)
    assert c.get("/").status_code == 403
    assert c.get("/?token=wrong").status_code == 403
    assert c.get("/?token=tok").status_code == 200
    assert c.get("/image/p0").status_code == 200  # the cookie set on first load


def test_decisions_written_and_validated(review_project):
    c = _client(review_project)
    c.get("/?token=tok")
    ok = c.post("/api/decision", json={"pair_id": "p0", "decision": "accept"})
    assert ok.status_code == 200 and ok.get_json()["decided"] == 1
    fix = {"pair_id": "p1", "decision": "fix", "caption": "new"}
    assert c.post("/api/decision", json=fix).status_code == 200
    assert c.post("/api/decision", json={"pair_id": "p1", "decision": "maybe"}).status_code == 400
    assert c.post("/api/decision", json={"pair_id": "p2", "decision": "fix"}).status_code == 400
    assert c.post("/api/decision", json={"pair_id": "zzz", "decision": "accept"}).status_code == 400
    latest = review_project.ledger.decisions().set_index("pair_id")
    assert latest.loc["p0", "decision"] == "accept" and latest.loc["p0", "source"] == "web"
    assert latest.loc["p1", "caption"] == "new" and latest.loc["p1", "reviewer"] == "tester"


def test_captions_escaped(review_project):
    html = _client(review_project).get("/?token=tok").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in html


def test_images_only_for_the_round(review_project):
    c = _client(review_project)
    c.get("/?token=tok")
    r = c.get("/image/p1")
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/jpeg" and r.data[:2] == b"\xff\xd8"
    for bad in ("nope", "..%2F..%2Fetc%2Fpasswd", "../../etc/passwd", "%2Fetc%2Fpasswd"):
        assert c.get(f"/image/{bad}").status_code == 404
