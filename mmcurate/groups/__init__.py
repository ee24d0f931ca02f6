"""Duplicate and boilerplate groups: find them, decide once per group, keep one pair per group.

Stage between ``signals`` and ``select`` (see ARCHITECTURE). Modules: :mod:`~mmcurate.groups.find`
(pure functions over arrays: caption normalisation, union-find, near edges, boilerplate),
:mod:`~mmcurate.groups.compute` (:func:`find_groups`, :class:`GroupParams`: the searches, through
the ranking's index machinery, and the pixel check of near pairs), :mod:`~mmcurate.groups.pixels`
(pixel signatures of the images of candidate pairs), :mod:`~mmcurate.groups.project` (a project's
``duplicates.parquet``, its fingerprint, splits, decisions applied per group, the hooks of select /
train / export),
:mod:`~mmcurate.groups.synthetic` (generated worlds with known truth).
"""

from mmcurate.groups.compute import DUPLICATE_KINDS, KINDS, GroupParams, find_groups
from mmcurate.groups.find import components, normalize_caption, normalize_captions

__all__ = ["DUPLICATE_KINDS", "KINDS", "GroupParams", "components", "find_groups", "normalize_caption",
           "normalize_captions"]
