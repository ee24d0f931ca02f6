"""The local review page for one round: a Flask app bound to 127.0.0.1 behind a session token.

- Every request needs the token: ``/?token=...`` on first load sets an HttpOnly cookie; the JSON
  API also accepts an ``X-Token`` header. Anything else gets 403.
- ``GET /`` renders the round's batch (thumbnail, caption, the signal that put it there, score,
  the evidence (:mod:`mmcurate.review.evidence`), current decision) with Jinja autoescaping; the
  page script only ever sets ``textContent``.
- ``POST /api/decision`` writes one decision to the ledger at once (``source="web"``), so a
  reload or a killed server loses nothing. The pair must be in this round's batch. A body over
  :data:`MAX_REQUEST_BYTES` gets 413, one that is not a flat JSON object of text fields (or a
  corrected caption over :data:`MAX_CAPTION_CHARS`) gets 400, each with a JSON ``error``. The
  ledger is checkpointed after each write and when the server stops, so ``labels.sqlite`` alone
  holds every decision.
- ``POST /api/accept_all`` accepts the listed cards that are still undecided, in one transaction;
  ``POST /api/undo`` takes the listed cards' decisions in this round back (:meth:`Ledger.undo`).
- ``GET /image/<pair_id>`` serves a thumbnail of a pair *in this round* or named by its evidence
  via ``resolve_image`` (keys may hold slashes, as WebDataset keys do); no part of the URL ever
  becomes a filesystem path, so traversal is impossible.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
import webbrowser
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from mmcurate._util import has_visible_text
from mmcurate.data.images import thumbnail_jpeg
from mmcurate.labels import Ledger
from mmcurate.labels.decision_files import DECISIONS

__all__ = ["MAX_CAPTION_CHARS", "MAX_REQUEST_BYTES", "create_app", "make_token", "serve"]

_THUMB = 256
MAX_REQUEST_BYTES = 256 * 1024
"""The largest body ``POST /api/decision`` takes (413 beyond)."""
MAX_CAPTION_CHARS = 20_000
"""The longest corrected caption the page takes (400 beyond)."""


def make_token() -> str:
    """A random URL-safe session token."""
    return secrets.token_urlsafe(24)


def _thumbnail(path: Path) -> bytes:
    return thumbnail_jpeg(path, _THUMB)


def _parse_body(data: bytes) -> tuple[dict, str | None]:
    """The POSTed JSON object, or an error: not JSON, nested too deeply, not an object, or a field
    that is not text (``caption`` may be null)."""
    try:
        body = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return {}, "the body must be a JSON object: {\"pair_id\": ..., \"decision\": ..., \"caption\": ...}"
    if not isinstance(body, dict):
        return {}, f"the body must be a JSON object, got a JSON {type(body).__name__}"
    for key in ("pair_id", "decision", "caption"):
        value = body.get(key)
        if not (isinstance(value, str) or (value is None and key == "caption")):
            return {}, f"{key!r} must be text, got {type(value).__name__}"
    return body, None


def _parse_decision(data: bytes, batch_ids: set[str], round_id: int):
    """``(pair_id, decision, caption, error)`` from a POSTed decision; ``error`` is None when valid."""
    body, error = _parse_body(data)
    if error:
        return "", "", None, error
    pid, decision = str(body.get("pair_id", "")), str(body.get("decision", "")).strip().lower()
    caption = (body.get("caption") or "").strip() or None
    if caption is not None and len(caption) > MAX_CAPTION_CHARS:
        error = f"the corrected caption has {len(caption)} characters, at most {MAX_CAPTION_CHARS} are taken"
    elif decision == "fix" and caption is not None and not has_visible_text(caption):
        error = "the corrected caption holds only invisible characters"
    elif pid not in batch_ids:
        error = f"pair {pid!r} is not in round {round_id}"
    elif decision not in DECISIONS:
        error = f"decision must be one of {', '.join(DECISIONS)}"
    elif decision == "fix" and not caption:
        error = "a fix needs the corrected caption"
    return pid, decision, caption, error


def _parse_ids(body: object, batch_ids: set[str], round_id: int) -> tuple[list[str], str | None]:
    """``(pair_ids, error)`` from a POSTed ``{"pair_ids": [...]}``; every id must be in the round."""
    ids = body.get("pair_ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not ids or not all(isinstance(p, str) for p in ids):
        return [], "pair_ids must be a non-empty list of pair ids"
    unknown = [p for p in ids if p not in batch_ids]
    if unknown:
        return [], f"{len(unknown)} pair ids are not in round {round_id}, e.g. {unknown[0]!r}"
    return list(dict.fromkeys(ids)), None


def _evidence_cards(evidence: pd.DataFrame | None) -> dict[str, dict]:
    """Evidence rows by pair id, as the template reads them (NaN similarities as None)."""
    if evidence is None or evidence.empty:
        return {}
    out = {}
    for rec in evidence.to_dict("records"):
        rec = {k: (None if isinstance(v, float) and v != v else v) for k, v in rec.items()}
        own = rec.get("own_similarity")
        for side in ("caption", "image"):
            sim = rec.get(f"{side}_similarity")
            rec[f"{side}_better"] = sim is not None and own is not None and sim > own
        out[str(rec["pair_id"])] = rec
    return out


def _cached_thumbnail(pair_id, allowed, resolve_image, cache: dict, lock) -> bytes | None:
    """Thumbnail bytes of a pair the page shows (cached), or None (unknown pair, no image)."""
    if pair_id not in allowed:
        return None
    with lock:
        data = cache.get(pair_id)
    if data is None:
        path = resolve_image(pair_id)
        if path is None or not Path(path).is_file():
            return None
        try:
            data = _thumbnail(Path(path))
        except OSError:
            return None
        with lock:
            cache[pair_id] = data
    return data


def create_app(*, pairs: pd.DataFrame, ledger_path: str | Path, round_id: int,
               resolve_image: Callable[[str], Path | None], token: str, reviewer: str | None = None,
               title: str = "mmcurate review", evidence: pd.DataFrame | None = None,
               show_images: bool = True):
    """Build the Flask app for one round (see module docstring).

    ``evidence``: :func:`mmcurate.review.evidence.pair_evidence` of the round's pairs (the page
    shows none without it); ``show_images``: False for projects without image files (the evidence
    then names pairs and their captions only).

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        app = create_app(pairs=proj.pairs, ledger_path=proj.ledger_path, round_id=1,
                         resolve_image=lambda pid: None, token=make_token())
    """
    from flask import Flask, abort, make_response, render_template, request  # heavy: flask

    app = Flask(__name__, template_folder="templates", static_folder="static")
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    ledger = Ledger(ledger_path)
    app.extensions["mmcurate_ledger"] = ledger  # serve() closes it (a checkpoint) when it stops
    captions = dict(zip(pairs["pair_id"].astype(str), pairs["caption"].astype(str)))
    images = dict(zip(pairs["pair_id"].astype(str), pairs["image"].astype(str)))
    batch_ids = set(ledger.batch(round_id)["pair_id"].astype(str))
    why = _evidence_cards(evidence)
    shown = batch_ids | {str(r[k]) for r in why.values() for k in ("caption_pair_id", "image_pair_id")
                         if r.get(k)}
    thumbs: dict[str, bytes] = {}
    lock = threading.Lock()

    def authorised() -> bool:
        given = request.args.get("token") or request.headers.get("X-Token") or \
            request.cookies.get("mmcurate_token") or ""
        return hmac.compare_digest(given.encode(), token.encode())

    @app.before_request
    def check_token():
        if not authorised():
            abort(403)

    def cards() -> list[dict]:
        batch = ledger.batch(round_id)
        out = []
        for _, row in batch.iterrows():
            pid = str(row["pair_id"])
            out.append({"pair_id": pid, "caption": captions.get(pid, ""), "image": images.get(pid, ""),
                        "reason": row.get("reason") or "",
                        "score": _shown_score(row.get("reason") or "", row.get("score")),
                        "decision": row.get("decision") or "", "fixed": row.get("caption_fixed") or "",
                        "why": why.get(pid), "second": row.get("stratum") == "second_opinion"})
        return out

    @app.get("/")
    def index():
        items = cards()
        decided = sum(1 for c in items if c["decision"])
        resp = make_response(render_template("review.html", title=title, items=items, round_id=round_id,
                                             decided=decided, total=len(items), token=token,
                                             show_images=show_images))
        resp.set_cookie("mmcurate_token", token, httponly=True, samesite="Strict")
        resp.headers["Content-Security-Policy"] = "default-src 'self'; img-src 'self'; style-src 'self'"
        return resp

    _decision_routes(app, ledger, round_id=round_id, batch_ids=batch_ids, reviewer=reviewer)

    @app.get("/image/<path:pair_id>", merge_slashes=False)  # WebDataset keys hold slashes
    def image(pair_id: str):
        data = _cached_thumbnail(pair_id, shown, resolve_image, thumbs, lock)
        if data is None:
            abort(404)
        resp = make_response(data)
        resp.headers["Content-Type"] = "image/jpeg"
        return resp

    return app


def _decision_routes(app, ledger: Ledger, *, round_id: int, batch_ids: set[str],
                     reviewer: str | None) -> None:
    """The JSON API that writes the ledger: one decision, accept every undecided card, undo."""
    from flask import jsonify, request  # heavy: flask

    def progress(**extra):
        decided = int(ledger.batch(round_id)["decision"].notna().sum())
        return jsonify(ok=True, decided=decided, total=len(batch_ids), **extra)

    @app.post("/api/decision")
    def decide():
        pid, decision, caption, error = _parse_decision(request.get_data(cache=False), batch_ids,
                                                        round_id)
        if error:
            return jsonify(error=error), 400
        ledger.record(pid, decision, caption=caption if decision == "fix" else None, round_id=round_id,
                      reviewer=reviewer, source="web")
        return progress()

    @app.post("/api/accept_all")
    def accept_all():
        ids, error = _parse_ids(request.get_json(silent=True) or {}, batch_ids, round_id)
        if error:
            return jsonify(error=error), 400
        batch = ledger.batch(round_id)
        open_ = set(batch.loc[batch["decision"].isna(), "pair_id"])
        chosen = [p for p in ids if p in open_]  # decided meanwhile (another tab): left as decided
        ledger.record_many([{"pair_id": p, "decision": "accept", "reviewer": reviewer} for p in chosen],
                           source="web", round_id=round_id)
        return progress(accepted=chosen)

    @app.errorhandler(413)
    def too_large(_err):
        return jsonify(error=f"the request is over {MAX_REQUEST_BYTES} bytes"), 413

    @app.post("/api/undo")
    def undo():
        ids, error = _parse_ids(request.get_json(silent=True) or {}, batch_ids, round_id)
        if error:
            return jsonify(error=error), 400
        undone = ledger.undo(ids, round_id=round_id, reviewer=reviewer, source="web")
        # what each card shows now: undecided, or a decision given in another round that still stands
        now = ledger.batch(round_id).set_index("pair_id").loc[undone]
        cards = [{"pair_id": pid, "decision": d, "caption": c}
                 for pid, d, c in zip(undone, now["decision"], now["caption_fixed"])]
        return progress(undone=undone, cards=cards)


def _quiet_handler():
    """werkzeug's request handler without the per-request access log (its lines hold the token)."""
    from werkzeug.serving import WSGIRequestHandler  # heavy: werkzeug

    class QuietRequestHandler(WSGIRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            return None

    return QuietRequestHandler


def make_review_server(app, *, host: str = "127.0.0.1", port: int = 0):
    """The threaded werkzeug server for ``app``; requests are not logged (URLs carry the token)."""
    from werkzeug.serving import make_server  # heavy: werkzeug

    return make_server(host, port, app, threaded=True, request_handler=_quiet_handler())


def serve(app, *, host: str = "127.0.0.1", port: int = 0, open_browser: bool = False,
          allow_remote: bool = False, token: str | None = None) -> None:
    """Serve ``app`` (threaded) until interrupted; prints the URL with its token."""

    if host not in ("127.0.0.1", "localhost", "::1") and not allow_remote:
        raise ValueError(f"refusing to serve on {host!r}: the review page binds 127.0.0.1 only "
                         f"(pass allow_remote=True to override)")
    server = make_review_server(app, host=host, port=port)
    url = f"http://{host}:{server.server_port}/" + (f"?token={token}" if token else "")
    print(f"review page: {url}  (Ctrl-C to stop; every decision is saved at once)", flush=True)
    if open_browser:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        ledger = app.extensions.get("mmcurate_ledger")
        if ledger is not None:
            ledger.close()  # checkpoints the write-ahead log into labels.sqlite


def _shown_score(reason: str, score) -> float | None:
    """The score to print beside the reason, or None when the reason already shows it
    (``p_misaligned=0.833``) or there is none."""
    try:
        value = float(score)
    except (TypeError, ValueError):
        return None
    return None if value != value or f"{value:.3f}" in reason else value
