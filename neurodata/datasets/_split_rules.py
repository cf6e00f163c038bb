"""Deterministic split rules for datasets without an official split.

``seeded_split``: per label, the sorted member names are permuted by
``numpy.random.default_rng([seed, label])`` and the first ``floor(train_fraction · n)`` are train,
the rest test (the rule N-Caltech101 documents too). ``check_seeded_options`` validates the two
options. The result depends only on the member names, the seed and the fraction: never on file
system order, and never on which other classes are present.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

__all__ = ["check_seeded_options", "seeded_split"]


def check_seeded_options(seed=0, train_fraction=0.8) -> dict:
    """``{"seed": int, "train_fraction": float}``; raises ``ValueError`` naming a bad option."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if not 0 < float(train_fraction) < 1:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction!r}")
    return {"seed": int(seed), "train_fraction": float(train_fraction)}


def seeded_split(names_by_label: dict, split: str, seed: int, train_fraction: float) -> set:
    """The member names of ``split`` (``"train"`` or ``"test"``) under the seeded rule (``"all"`` is
    both, built split by split: ``EventDataset.all_by_splits``).

    ``names_by_label`` maps an integer label to the member names of that class (any order).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    chosen = set()
    for label, names in names_by_label.items():
        names = sorted(names)
        order = np.random.default_rng([int(seed), int(label)]).permutation(len(names))
        n_train = math.floor(Fraction(str(train_fraction)) * len(names))  # exact: 0.7 of 90 is 63, not 62
        idx = order[:n_train] if split == "train" else order[n_train:]
        chosen.update(names[i] for i in idx)
    return chosen
