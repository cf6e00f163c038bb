"""DVS-Lip (Tan et al. 2022): 100 spoken words seen by a DAVIS346 cropped to the mouth
(128×128), one structured ``.npy`` per utterance in official train/test folders."""
from __future__ import annotations

import re

from ..archives import open_archive
from ..errors import FormatError
from ..formats.safe_npy import load_npy
from ._base import EventDataset
from ._columns import events_from_columns
from ._recipe import Recipe, Resource

__all__ = ["DVSLip", "RECIPE", "WORDS"]

WORDS = (
    "accused", "action", "allow", "allowed", "america", "american", "another", "around", "attacks", "banks",
    "become", "being", "benefit", "benefits", "between", "billion", "called", "capital", "challenge", "change",
    "chief", "couple", "court", "death", "described", "difference", "different", "during", "economic",
    "education", "election", "england", "evening", "everything", "exactly", "general", "germany", "giving",
    "ground", "happen", "happened", "having", "heavy", "house", "hundreds", "immigration", "judge", "labour",
    "leaders", "legal", "little", "london", "majority", "meeting", "military", "million", "minutes", "missing",
    "needs", "number", "numbers", "paying", "perhaps", "point", "potential", "press", "price", "question",
    "really", "right", "russia", "russian", "saying", "security", "several", "should", "significant", "spend",
    "spent", "started", "still", "support", "syria", "syrian", "taken", "taking", "terms", "these", "thing",
    "think", "times", "tomorrow", "under", "warning", "water", "welcome", "words", "worst", "years", "young",
)
assert len(WORDS) == 100 and list(WORDS) == sorted(WORDS)

RECIPE = Recipe(
    name="dvslip",
    title="DVS-Lip",
    resources=(Resource("DVS-Lip.zip", (), "md5:2dcb959255122d4cdeb6094ca282494b"),),
    classes=WORDS,
    sensor_size=(128, 128, 2),
    splits=("train", "test"),
    licence="not stated by the authors (research use; see https://sites.google.com/view/event-based-lipreading)",
    citation="G. Tan, Y. Wang, H. Han, Y. Cao, F. Wu, Z.-J. Zha. Multi-Grained Spatio-Temporal Features "
             "Perceived Network for Event-Based Lip-Reading. CVPR 2022.",
    orientation="as stored (fields x, y of the .npy); p = 1 where the stored p > 0",
    time_origin="as stored (field t, µs from the clip's start); stable-sorted by t if out of order",
    split_rule="official: members DVS-Lip/train/<word>/*.npy and DVS-Lip/test/<word>/*.npy",
    sample_counts={},  # not verified here; see docs/datasets.md
    download="manual",
    manual_instructions=(
        "DVS-Lip.zip (md5 2dcb959255122d4cdeb6094ca282494b) is on Google Drive: open "
        "https://drive.google.com/file/d/1dBEgtmctTTWJlWnuWxFtk8gfOdVVpkQ0/view (linked from "
        "https://sites.google.com/view/event-based-lipreading) and download it."
    ),
    homepage="https://sites.google.com/view/event-based-lipreading",
)

_MEMBER = re.compile(r"(?:^|/)(train|test)/([^/]+)/[^/]+\.npy$")


class DVSLip(EventDataset):
    """DVS-Lip: 100 words → labels 0–99 in alphabetical order (the word folder; never folder
    listing order), 128×128×2. A manual download. Files are loaded with pickles refused."""

    recipe = RECIPE

    def _samples(self, files, split):
        path = files[self.recipe.resources[0].filename]
        index = {w: i for i, w in enumerate(self.recipe.classes)}
        wanted = ("train", "test") if split == "all" else (split,)
        with open_archive(path) as ar:
            members = []
            for m in ar.files(".npy"):
                match = _MEMBER.search(m.name)
                if match and match.group(1) in wanted:
                    word = match.group(2)
                    if word not in index:
                        raise FormatError(path, None, f"member {m.name}: unknown word folder {word!r}")
                    members.append((wanted.index(match.group(1)), index[word], m.name))
            if not members:
                raise FormatError(path, None, f"no DVS-Lip/{'|'.join(wanted)}/<word>/<n>.npy members found")
            for _, label, name in sorted(members):
                where = f"{path}!{name}"
                arr = load_npy(ar.read(name), path=where)
                missing = [f for f in ("t", "x", "y", "p") if f not in (arr.dtype.names or ())]
                if missing or arr.ndim != 1:
                    raise FormatError(where, None, f"expected a 1-D structured array with fields t, x, y, p; "
                                                   f"got shape {arr.shape} of {arr.dtype}")
                events, _ = events_from_columns(arr["t"], arr["x"], arr["y"], arr["p"], self.recipe.sensor_size, where)
                yield events, label, {"source": name, "t_offset": 0}
