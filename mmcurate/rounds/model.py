"""The model in use on a project: the latest accepted calibrator (+ head), and the head applied."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmcurate._fileio import read_json_object
from mmcurate.exceptions import ProjectError
from mmcurate.learn import apply_calibration, calibrator_from_dict
from mmcurate.rank import APPROXIMATE_FROM

if TYPE_CHECKING:
    from mmcurate.head import ProjectionHead
    from mmcurate.project import Project
    from mmcurate.project.files import ProjectFiles
    from mmcurate.signals.alignment import Calibrator


@dataclass
class Model:
    """The model that ranks: a validated calibrator (+ head where it helped), or the prior.

    ``round`` is its model (head) round, ``None`` before any accepted model; ``calibrator`` is
    ``None`` for the zero-label prior or for models recorded before validation existed (those are
    refitted on the labels when ranking, as before).
    """

    round: int | None = None
    head: ProjectionHead | None = None
    calibrator: Calibrator | None = None
    k: int | None = None
    trained_on: frozenset[str] = field(default_factory=frozenset)
    info: dict[str, Any] = field(default_factory=dict)
    held_out: dict[str, float] = field(default_factory=dict)
    """Each decided pair's P(aligned) from fits that did not see its decision."""
    label_calibration: tuple[float, float] = (1.0, 0.0)
    """``(a, b)`` that calibrate :attr:`held_out` on the labelled pairs
    (:func:`mmcurate.learn.calibrate_on_labels`)."""

    def held_out_calibrated(self, pair_ids: pd.Series) -> np.ndarray:
        """Calibrated held-out P(aligned) of ``pair_ids`` (NaN where none): what a person's
        decision is weighed against (second opinions, disputes)."""
        held = pair_ids.map(pd.Series(self.held_out, dtype=float)).to_numpy(np.float64)
        return apply_calibration(held, self.label_calibration)


def load_model(proj: ProjectFiles) -> Model:
    """The latest *accepted* model of the project (:class:`Model`; empty before any)."""
    if not proj.has_ledger():
        return Model()
    heads = proj.ledger.heads()
    for record in reversed(heads.to_dict("records")):
        info = (record.get("metrics") or {}).get("model")
        if info is not None and not info.get("accepted"):
            continue
        head = None
        if record["checkpoint"] and (info is None or info.get("use_head")):
            from mmcurate.head import ProjectionHead  # heavy: torch

            head = ProjectionHead.load(proj.checkpoint_path(record["checkpoint"]))
        calibrator, k, trained_on, held_out = None, None, frozenset[str](), {}
        label_calibration = (1.0, 0.0)
        sidecar = proj.model_record_path(int(record["head_round"]))
        if info is not None and sidecar.is_file():
            data = read_json_object(sidecar, what="the model's calibrator")
            if not isinstance(data.get("calibrator"), dict) or not isinstance(data.get("k"), int):
                raise ProjectError(f"{sidecar} (the model's calibrator) is damaged: no 'calibrator' "
                                   f"object or integer 'k'; restore it from a backup or retrain "
                                   f"with `mmcurate train`")
            calibrator, k = calibrator_from_dict(data["calibrator"]), int(data["k"])
            trained_on = frozenset(data.get("trained_on", ()))
            held_out = {str(key): float(v) for key, v in (data.get("held_out_p_aligned") or {}).items()}
            cal = data.get("label_calibration") or {}
            label_calibration = (float(cal.get("a", 1.0)), float(cal.get("b", 0.0)))
        return Model(int(record["head_round"]), head, calibrator, k, trained_on, dict(info or {}), held_out,
                     label_calibration)
    return Model()


def load_latest_head(proj: ProjectFiles) -> tuple[ProjectionHead | None, int | None]:
    """The projection head of the model in use and its round: ``(None, round)`` when that model
    uses no head, ``(None, None)`` before any accepted model."""
    model = load_model(proj)
    return model.head, model.round


def current_embeddings(proj: Project) -> tuple[np.ndarray, np.ndarray, int | None]:
    """Image and caption vectors after the latest trained head (raw CLIP vectors before any).

    Above ``rank.APPROXIMATE_FROM`` pairs the adapted vectors are lazy views
    (:class:`mmcurate.head.TransformedView`) computed chunk by chunk when read.
    """
    head, head_round = load_latest_head(proj)
    return (*apply_head(head, proj.image_embeddings(), proj.text_embeddings()), head_round)


def apply_head(head: ProjectionHead | None, image: np.ndarray, text: np.ndarray) -> tuple[Any, Any]:
    """``(image, text)`` adapted by ``head`` (unchanged when None); lazy views above
    ``rank.APPROXIMATE_FROM`` pairs, so large pools never get a float32 copy."""
    if head is None:
        return image, text
    if len(image) > APPROXIMATE_FROM:
        return head.view(image, "image"), head.view(text, "text")
    return head.transform_images(image), head.transform_texts(text)
