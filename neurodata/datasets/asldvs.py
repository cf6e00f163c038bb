"""ASL-DVS (Bi et al. 2019): 24 American Sign Language letters recorded with a DAVIS240c,
one MATLAB v5 ``.mat`` per sample (``ts``, ``x``, ``y``, ``pol`` column vectors).

The archive is a Dropbox folder download whose zip is re-packed by the host (its md5 drifts:
``20f1dbf9…`` then ``33f8b87bf45edc0bfed0de41822279b9``), so no archive checksum can be pinned.
What *is* verified instead (``verify=True``) is described in ``content_manifest`` and
``docs/datasets.md``.
"""
from __future__ import annotations

import contextlib
import hashlib
import posixpath
from pathlib import Path

from ..archives import open_archive
from ..errors import ChecksumError, FormatError
from ..formats.matv5 import decode_mat
from ._base import EventDataset
from ._columns import events_from_columns
from ._recipe import Recipe, Resource
from ._split_rules import check_seeded_options, seeded_split

__all__ = ["ASLDVS", "RECIPE", "content_manifest", "ORIENTATIONS"]

LETTERS = tuple("abcdefghiklmnopqrstuvwxy")  # a–y without j (j and z need motion)
ORIENTATIONS = ("tonic", "stored", "spikingjelly")
MAX_NESTING = 3

RECIPE = Recipe(
    cache_version=2,  # 2: split "all" is train then test (it was member order)
    name="asldvs",
    title="ASL-DVS",
    resources=(Resource("ICCV2019_DVS_dataset.zip", (), None, aliases=("ASLDVS.zip",)),),
    classes=LETTERS,
    sensor_size=(240, 180, 2),
    splits=("train", "test"),
    licence="not stated by the authors (research use; see https://github.com/PIX2NVS/NVS2Graph)",
    citation="Y. Bi, A. Chadha, A. Abbas, E. Bourtsoulatze, Y. Andreopoulos. Graph-Based Object "
             "Classification for Neuromorphic Vision Sensing. ICCV 2019.",
    orientation="orientation='tonic' (default): x as stored, y = 179 − y_stored (Tonic's flip); "
                "'stored': as stored; 'spikingjelly': x = 239 − x, y = 179 − y; p = 1 where pol > 0",
    time_origin="the sample's first event (ts in µs as stored; the offset is in metadata t_offset)",
    split_rule="no official split: per letter, the sorted member names are permuted by "
               "numpy.random.default_rng([seed, label]) and the first floor(train_fraction · n) are train "
               "(defaults seed=0, train_fraction=0.8)",
    sample_counts={"all": 100800},
    download="manual",
    manual_instructions=(
        "The original Dropbox folder (https://www.dropbox.com/sh/ibq0jsicatn7l6r/AACNrNELV56rs1YInMWUs9CAa?dl=1, "
        "saved as ASLDVS.zip) has expired for many users; SpikingJelly points to the OpenI mirror: "
        "`pip install openi && openi dataset download OpenI/ASLDVS --local_dir ./ASLDVS`. Either ASLDVS.zip or the "
        "ICCV2019_DVS_dataset.zip inside it is accepted (nested zips are read in place). Its checksum drifts, so "
        "the content is verified instead (100 800 decodable .mat samples in the 24 letter folders)."
    ),
    homepage="https://github.com/PIX2NVS/NVS2Graph",
)


def _letter(name: str):
    folder = posixpath.basename(posixpath.dirname(name))
    return folder[-1].lower() if folder else None


@contextlib.contextmanager
def _mat_members(path, tmpdir=None):
    """Yield a list of ``(display name, member name, archive)`` for every ``.mat`` member of the
    archive and of zips nested in it (up to 3 levels), sorted by display name; archives stay open
    inside the ``with`` block."""
    with contextlib.ExitStack() as stack:
        found = []

        def walk(archive, prefix, depth):
            for m in archive.files():
                lower = m.name.lower()
                if lower.endswith(".mat"):
                    found.append((prefix + m.name, m.name, m.size, archive))
                elif lower.endswith(".zip") and depth < MAX_NESTING:
                    inner = stack.enter_context(archive.open_archive(m.name, tmpdir=tmpdir))
                    walk(inner, f"{prefix}{m.name}!", depth + 1)

        walk(stack.enter_context(open_archive(path)), "", 0)
        yield sorted(found, key=lambda e: e[0])


def content_manifest(path) -> dict:
    """What ``verify=True`` checks, computed from an archive without decoding samples.

    Returns ``{"count": N, "per_class": {letter: n}, "unlabelled": [names], "sha256": hex}``
    where ``sha256`` is the digest of the sorted lines ``"<member path in its innermost zip>\\t<size>\\n"``
    of the ``.mat`` members (independent of how the outer zips were packed), and a member's
    class is the last character of its parent folder.
    """
    with _mat_members(path, tmpdir=Path(path).parent) as members:
        return _manifest([(m[1], m[2]) for m in members])


def _manifest(name_sizes) -> dict:
    per_class = {c: 0 for c in LETTERS}
    unlabelled = []
    lines = []
    for name, size in name_sizes:
        letter = _letter(name)
        if letter in per_class:
            per_class[letter] += 1
        else:
            unlabelled.append(name)
        lines.append(f"{name}\t{size}\n")
    digest = hashlib.sha256("".join(sorted(lines)).encode()).hexdigest()
    return {"count": len(lines), "per_class": per_class, "unlabelled": unlabelled, "sha256": digest}


class ASLDVS(EventDataset):
    """ASL-DVS: 24 letters (a–y without j → labels 0–23 in alphabetical order; Tonic lists 26
    names and so numbers the letters after j one higher), 240×180×2, 100 800 samples.

    Options: ``orientation`` (``"tonic"`` default, ``"stored"``, ``"spikingjelly"``; see
    ``RECIPE.orientation``), ``seed`` and ``train_fraction`` (the split rule).

    Verification (``verify=True``): the archive checksum is not pinned (the host re-packs it);
    instead, before a cache is built, every ``.mat`` member is counted and must number
    ``expected_count`` (100 800) with all 24 letter folders present, and (when
    ``expected_manifest`` is set) the manifest digest of ``content_manifest`` must match;
    zip CRC-32s are checked as members are read and every sample must decode as MAT v5 with
    ``ts``, ``x``, ``y``, ``pol`` of equal length within 240×180.
    """

    recipe = RECIPE
    all_by_splits = True  # "all" = train then test, not member order
    expected_count = 100_800
    required_letters = LETTERS
    expected_manifest: str | None = None  # not yet known: the real archive was not available to us

    def _check_options(self, orientation: str = "tonic", seed: int = 0, train_fraction: float = 0.8) -> dict:
        if orientation not in ORIENTATIONS:
            raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")
        return {"orientation": orientation, **check_seeded_options(seed, train_fraction)}

    def _verify_content(self, path, members):
        manifest = _manifest([(m[1], m[2]) for m in members])
        problems = []
        if manifest["count"] != self.expected_count:
            problems.append(f"{manifest['count']} .mat members, expected {self.expected_count}")
        empty = [c for c in self.required_letters if manifest["per_class"].get(c, 0) == 0]
        if empty:
            problems.append(f"no samples for letters {empty}")
        if self.expected_manifest and manifest["sha256"] != self.expected_manifest:
            problems.append(f"manifest sha256 {manifest['sha256']}, expected {self.expected_manifest}")
        if problems:
            raise ChecksumError(f"ASL-DVS content check failed for {path}: {'; '.join(problems)} "
                                f"(per letter: {manifest['per_class']}). Re-download it (see `neurodata info asldvs`), "
                                "or pass verify=False / --no-verify to use it anyway.")

    def _orient(self, x, y):
        mode = self.options["orientation"]
        W, H, _ = self.recipe.sensor_size
        if mode == "tonic":
            return x, H - 1 - y
        if mode == "spikingjelly":
            return W - 1 - x, H - 1 - y
        return x, y

    def _samples(self, files, split):
        path = files[self.recipe.resources[0].filename]
        index = {c: i for i, c in enumerate(self.recipe.classes)}
        with _mat_members(path, tmpdir=Path(path).parent) as members:
            if self._verify:
                self._verify_content(path, members)
            by_label: dict = {}
            for display, name, _, _ in members:
                letter = _letter(name)
                if letter in index:
                    by_label.setdefault(index[letter], []).append(display)
            chosen = seeded_split(by_label, split, self.options["seed"], self.options["train_fraction"])
            for display, name, _, archive in members:
                if display not in chosen:
                    continue
                where = f"{path}!{display}"
                mat = decode_mat(archive.read(name), ("ts", "x", "y", "pol"), path=where)
                x, y = mat["x"].reshape(-1), mat["y"].reshape(-1)
                lengths = {a.size for a in (mat["ts"], mat["x"], mat["y"], mat["pol"])}
                if len(lengths) != 1:
                    raise FormatError(where, None, f"ts, x, y, pol have different lengths {sorted(lengths)}")
                W, H, _ = self.recipe.sensor_size
                if x.size and (x.min() < 0 or x.max() >= W or y.min() < 0 or y.max() >= H):
                    raise FormatError(where, None, f"x {x.min()}..{x.max()} / y {y.min()}..{y.max()} "
                                                   f"outside the {W}×{H} sensor")
                x, y = self._orient(x, y)
                events, t0 = events_from_columns(mat["ts"], x, y, mat["pol"], self.recipe.sensor_size, where,
                                                 origin="first")
                yield events, index[_letter(name)], {"source": display, "t_offset": t0}
