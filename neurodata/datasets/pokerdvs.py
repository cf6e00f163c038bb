"""POKER-DVS (Serrano-Gotarredona & Linares-Barranco 2015): card pips (club, heart, diamond,
spade) flashed past a DVS, tracked and cropped to 35×35; one ``.npy`` per symbol."""
from __future__ import annotations

import posixpath

from ..archives import open_archive
from ..errors import FormatError
from ..formats.safe_npy import load_npy
from ._base import EventDataset
from ._columns import events_from_columns
from ._recipe import Recipe, Resource

__all__ = ["POKERDVS", "RECIPE"]

RECIPE = Recipe(
    name="pokerdvs",
    title="POKER-DVS",
    resources=(
        Resource("pips_train.tar.gz", (), "md5:412bcfb96826e4fcb290558e8c150aae", splits=("train",)),
        Resource("pips_test.tar.gz", (), "md5:eef2bf7d0d3defae89a6fa98b07c17af", splits=("test",)),
    ),
    classes=("cl", "he", "di", "sp"),
    sensor_size=(35, 35, 2),
    splits=("train", "test"),
    licence="not stated by the authors (research use; see http://www2.imse-cnm.csic.es/caviar/POKERDVS.html)",
    citation="T. Serrano-Gotarredona, B. Linares-Barranco. Poker-DVS and MNIST-DVS. Their History, How They "
             "Were Made, and Other Details. Frontiers in Neuroscience 9:481, 2015.",
    orientation="as stored in the .npy columns (t, x, y, p); p = 1 where the stored p > 0",
    time_origin="the sample's first event (the offset is in metadata t_offset)",
    split_rule="as Tonic packaged it: pips_train.tar.gz is train, pips_test.tar.gz is test",
    sample_counts={},  # Tonic's archives are no longer available to check; see docs/datasets.md
    download="manual",
    manual_instructions=(
        "Tonic's preprocessed archives pips_train.tar.gz (md5 412bcfb96826e4fcb290558e8c150aae) and "
        "pips_test.tar.gz (md5 eef2bf7d0d3defae89a6fa98b07c17af) are no longer served (Tonic 1.7 expects them "
        "next to its own source files and its wheel does not ship them): copy them from an older Tonic "
        "download folder or checkout that still has them. Each holds pips_<split>/<folder ending in the "
        "class code cl|he|di|sp>/<sample>.npy with (N, 4) columns t, x, y, p. The original recordings are "
        "at http://www2.imse-cnm.csic.es/caviar/POKERDVS.html (not this layout)."
    ),
    homepage="http://www2.imse-cnm.csic.es/caviar/POKERDVS.html",
)


def member_class(name: str):
    """Tonic's rule: the class is the last two characters of the member's parent folder."""
    folder = posixpath.basename(posixpath.dirname(name))
    return folder[-2:] if len(folder) >= 2 else None


class POKERDVS(EventDataset):
    """POKER-DVS: 4 classes ``cl, he, di, sp`` → labels 0–3 (Tonic's order), 35×35×2.
    A manual download (see ``RECIPE.manual_instructions``)."""

    recipe = RECIPE

    def _samples(self, files, split):
        index = {c: i for i, c in enumerate(self.recipe.classes)}
        for res in self._resources():
            path = files[res.filename]
            with open_archive(path) as ar:
                names = sorted(m.name for m in ar.files(".npy") if member_class(m.name) in index)
                if not names:
                    raise FormatError(path, None, "no <cl|he|di|sp>/<sample>.npy members found")
                for name in names:
                    where = f"{path}!{name}"
                    arr = load_npy(ar.read(name), path=where)
                    if arr.ndim != 2 or arr.shape[1] != 4 or arr.dtype.names is not None:
                        raise FormatError(where, None, f"expected an (N, 4) array of t, x, y, p, got "
                                                       f"shape {arr.shape} of {arr.dtype}")
                    events, t0 = events_from_columns(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3],
                                                     self.recipe.sensor_size, where, origin="first")
                    yield events, index[member_class(name)], {"source": name, "t_offset": t0}
