"""NAV Gesture (Maro et al. 2020): six smartphone navigation gestures seen by an ATIS sensor,
recorded while walking (``navgesture-walk``) or sitting (``navgesture-sit``).

The archives hold one zip per subject, each with ATIS TD ``.dat`` recordings named
``<user>_<class>_<...>.dat``; the class is the second ``_``-separated token of the file name.
"""
from __future__ import annotations

import posixpath

from ..archives import open_archive
from ..formats import read_bytes
from ._base import EventDataset
from ._columns import events_from_columns
from ._recipe import Recipe, Resource
from ._split_rules import check_seeded_options, seeded_split

__all__ = ["NavGestureWalk", "NavGestureSit", "WALK_RECIPE", "SIT_RECIPE", "CODES"]

CODES = ("le", "ri", "up", "do", "ho", "se")
CLASSES = ("left", "right", "up", "down", "home", "select")
_COMMON = dict(
    classes=CLASSES,
    sensor_size=(304, 240, 2),
    splits=("train", "test"),
    licence="not stated by the authors (their host neuromorphic-vision.com has expired)",
    citation="J.-M. Maro, S.-H. Ieng, R. Benosman. Event-Based Gesture Recognition With Dynamic Background "
             "Suppression Using Smartphone Computational Capabilities. Frontiers in Neuroscience 14:275, 2020.",
    orientation="x = x_raw, y = 239 − y_raw (SpikingJelly's flip of the ATIS bottom-left origin to top-left); "
                "DAT version 1 layout (x = w & 0x1FF, y = (w >> 9) & 0xFF, p = (w >> 17) & 1) whatever the header says",
    time_origin="the first event (t_offset = its timestamp); events whose t goes backwards are kept and "
                "stably sorted by t (SpikingJelly drops them instead)",
    split_rule="no official split: label = the file name's class code (le, ri, up, do, ho, se → 0-5); per class, "
               "the sorted member names are permuted by numpy.random.default_rng([seed, label]) and the first "
               "floor(train_fraction · n) are train (defaults seed=0, train_fraction=0.8)",
    sample_counts={},  # not published in a form we could verify
    download="manual",
    homepage="https://www.frontiersin.org/articles/10.3389/fnins.2020.00275/full",
)
_GONE = ("Its host (https://www.neuromorphic-vision.com/public/downloads/navgesture/) has expired and no "
         "official mirror is known: obtain {name} (md5 {md5}) from the authors or a colleague's copy.")
WALK_MD5, SIT_MD5 = "5d305266f13005401959e819abe206f0", "1571753ace4d9e0946e6503313712c22"

WALK_RECIPE = Recipe(
    name="navgesture-walk", title="NAV Gesture (walk)",
    resources=(Resource("navgesture-walk.zip", (), f"md5:{WALK_MD5}"),),
    manual_instructions=_GONE.format(name="navgesture-walk.zip", md5=WALK_MD5), **_COMMON,
    cache_version=2)  # 2: split "all" is train then test (it was member order)
SIT_RECIPE = Recipe(
    name="navgesture-sit", title="NAV Gesture (sit)",
    resources=(Resource("navgesture-sit.zip", (), f"md5:{SIT_MD5}"),),
    manual_instructions=_GONE.format(name="navgesture-sit.zip", md5=SIT_MD5), **_COMMON,
    cache_version=2)  # 2: split "all" is train then test (it was member order)


def member_code(name: str):
    """The class code of ``<user>_<code>_<...>.dat`` (None when the name has no such token)."""
    parts = posixpath.basename(name).split("_")
    return parts[1] if len(parts) >= 3 else None


def _archives(outer):
    """``(prefix, archive)`` for the outer archive and each subject zip inside it."""
    yield "", outer
    for m in sorted(outer.files(".zip"), key=lambda m: m.name):
        with outer.open_archive(m.name) as inner:
            yield f"{m.name}!", inner


class NavGestureWalk(EventDataset):
    """NAV Gesture (walk): 304×240×2, labels 0-5 = left, right, up, down, home, select.

    Options: ``seed`` (int) and ``train_fraction`` (0 < f < 1) of the seeded per-class split.
    """

    recipe = WALK_RECIPE
    all_by_splits = True  # "all" = train then test, not member order

    def _check_options(self, seed: int = 0, train_fraction: float = 0.8) -> dict:
        return check_seeded_options(seed, train_fraction)

    def _samples(self, files, split):
        path = files[self.recipe.resources[0].filename]
        index = {c: i for i, c in enumerate(CODES)}
        with open_archive(path) as outer:
            by_label: dict = {}
            for prefix, ar in _archives(outer):
                for m in ar.files(".dat"):
                    code = member_code(m.name)
                    if code not in index:
                        raise ValueError(f"{path}!{prefix}{m.name}: class code {code!r} is not one of {CODES}")
                    by_label.setdefault(index[code], []).append(prefix + m.name)
            chosen = seeded_split(by_label, split, self.options["seed"], self.options["train_fraction"])
            for prefix, ar in _archives(outer):
                for name in sorted(m.name for m in ar.files(".dat") if prefix + m.name in chosen):
                    where = f"{path}!{prefix}{name}"
                    raw = read_bytes(ar.read(name), "dat", name=name, version=1)
                    H = self.recipe.sensor_size[1]
                    if raw.size and int(raw["y"].max()) >= H:
                        raise ValueError(f"{where}: y_raw = {int(raw['y'].max())} does not fit the {H}-row sensor")
                    events, t0 = events_from_columns(raw["t"], raw["x"], H - 1 - raw["y"].astype(int), raw["p"],
                                                     self.recipe.sensor_size, where, origin="first")
                    yield events, index[member_code(name)], {"source": prefix + name, "t_offset": t0}


class NavGestureSit(NavGestureWalk):
    """NAV Gesture (sit): as ``NavGestureWalk``, recorded sitting."""

    recipe = SIT_RECIPE
