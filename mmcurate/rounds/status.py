"""A project's rounds at a glance: rounds, decisions, conflicts, the model in use, the noise rate."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmcurate._fileio import read_json_object
from mmcurate.rounds.model import load_model

if TYPE_CHECKING:
    from mmcurate.project.files import ProjectFiles


def undecided_in_latest_round(proj: ProjectFiles) -> tuple[int, int, int] | None:
    """``(round, n_undecided, n_items)`` of the latest round while some of its pairs are still
    undecided, else None (no round yet, or every pair decided). ``mmcurate select`` says so before
    it opens another round.

    Examples
    --------
    Usage (not run as a doctest: it needs data of your own)::

        undecided_in_latest_round(proj)
        # (3, 12, 40)
    """
    if not proj.has_ledger():
        return None
    rounds = proj.ledger.rounds()
    if rounds.empty:
        return None
    last = rounds.iloc[-1]
    n_open = int(last["n_items"]) - int(last["n_decided"])
    return (int(last["round"]), n_open, int(last["n_items"])) if n_open > 0 else None


def rounds_status(proj: ProjectFiles) -> dict[str, Any]:
    """Rounds, decisions, conflicts, head metrics and the estimated noise rate."""
    ledger = proj.ledger
    decisions = ledger.resolved()  # one decision per pair (repeated opinions resolved)
    counts = decisions["decision"].value_counts().to_dict() if len(decisions) else {}
    latest = ledger.latest_head()
    state_path = proj.state_path
    state = read_json_object(state_path, what="the last ranking's state") if state_path.is_file() else {}
    reviewed = len(decisions)
    in_use = load_model(proj)
    latest_info = ((latest.get("metrics") or {}).get("model") if latest else None) or {}
    return {
        "model": {"in_use": in_use.round, "latest": latest["head_round"] if latest else None,
                  "latest_accepted": latest_info.get("accepted", bool(latest)) if latest else None,
                  "latest_reason": latest_info.get("reason"), "uses_head": in_use.head is not None,
                  "labels_not_yet_used": reviewed - (latest.get("n_labels") or 0 if latest else 0)},
        "rounds": len(ledger.rounds()),
        "decisions": {"total": reviewed, **{d: int(counts.get(d, 0)) for d in ("accept", "reject", "fix")}},
        "conflicts": len(ledger.conflicts()),
        "second_opinions": len(ledger.second_opinions()),
        "reviewer": in_use.info.get("reviewer") or None,
        "head": ({"round": latest["head_round"], "n_labels": latest.get("n_labels"),
                  "metrics": {k: v for k, v in (latest.get("metrics") or {}).items()
                              if not isinstance(v, list)}} if latest else None),
        "reviewed_noise_rate": (float((decisions["decision"] != "accept").mean()) if reviewed else None),
        "estimated_noise_rate": state.get("estimated_noise_rate"),
        "estimated_noise": {key: state.get(key) for key in ("low", "high", "n_random_labels", "how")},
    }
