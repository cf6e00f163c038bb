"""N-Caltech101 (Orchard et al. 2015): Caltech101 images seen by a saccading ATIS sensor."""
from __future__ import annotations

from ..archives import open_archive
from ._base import EventDataset
from ._recipe import Recipe, Resource
from ._split_rules import check_seeded_options, seeded_split
from .nmnist import atis_archive_samples

__all__ = ["NCaltech101", "RECIPE", "OBJECT_CLASSES"]

OBJECT_CLASSES = tuple(sorted((
    "Faces_easy", "Leopards", "Motorbikes", "accordion", "airplanes", "anchor", "ant", "barrel", "bass",
    "beaver", "binocular", "bonsai", "brain", "brontosaurus", "buddha", "butterfly", "camera", "cannon",
    "car_side", "ceiling_fan", "cellphone", "chair", "chandelier", "cougar_body", "cougar_face", "crab",
    "crayfish", "crocodile", "crocodile_head", "cup", "dalmatian", "dollar_bill", "dolphin", "dragonfly",
    "electric_guitar", "elephant", "emu", "euphonium", "ewer", "ferry", "flamingo", "flamingo_head",
    "garfield", "gerenuk", "gramophone", "grand_piano", "hawksbill", "headphone", "hedgehog", "helicopter",
    "ibis", "inline_skate", "joshua_tree", "kangaroo", "ketch", "lamp", "laptop", "llama", "lobster",
    "lotus", "mandolin", "mayfly", "menorah", "metronome", "minaret", "nautilus", "octopus", "okapi",
    "pagoda", "panda", "pigeon", "pizza", "platypus", "pyramid", "revolver", "rhino", "rooster",
    "saxophone", "schooner", "scissors", "scorpion", "sea_horse", "snoopy", "soccer_ball", "stapler",
    "starfish", "stegosaurus", "stop_sign", "strawberry", "sunflower", "tick", "trilobite", "umbrella",
    "watch", "water_lilly", "wheelchair", "wild_cat", "windsor_chair", "wrench", "yin_yang",
)))
assert len(OBJECT_CLASSES) == 100
BACKGROUND = "BACKGROUND_Google"

RECIPE = Recipe(
    cache_version=2,  # 2: split "all" is train then test (it was member order)
    name="ncaltech101",
    title="N-Caltech101",
    resources=(
        Resource("N-Caltech101-archive.zip",
                 ("https://data.mendeley.com/public-files/datasets/cy6cvx3ryv/files/"
                  "36b5c52a-b49d-4853-addb-a836a8883e49/file_downloaded",),
                 "md5:66201824eabb0239c7ab992480b50ba3", aliases=("Caltech101.zip",)),
    ),
    classes=OBJECT_CLASSES,
    sensor_size=(240, 180, 2),
    splits=("train", "test"),
    licence="CC BY-SA 4.0",
    citation="G. Orchard, A. Jayawant, G. K. Cohen, N. Thakor. Converting Static Image Datasets to Spiking "
             "Neuromorphic Datasets Using Saccades. Frontiers in Neuroscience 9:437, 2015.",
    orientation="as stored (x = byte 0, y = byte 1); no flips and no shift to min x = min y = 0",
    time_origin="the recording's own zero (timestamps as stored)",
    split_rule="no official split: per class, the sorted members are permuted by "
               "numpy.random.default_rng([seed, label]) and the first floor(train_fraction · n) are train "
               "(defaults seed=0, train_fraction=0.8)",
    sample_counts={"all": 8242, "all (with background)": 8709},
    homepage="https://www.garrickorchard.com/datasets/n-caltech101",
)


def _member_class(name: str):
    parts = name.split("/")
    return parts[-2] if len(parts) >= 2 else None


class NCaltech101(EventDataset):
    """N-Caltech101: 100 object classes (8242 samples), sizes up to 240×180; ``BACKGROUND_Google``
    (467 samples) is excluded unless ``keep_background=True`` (then it is the last label, 100).

    Options: ``keep_background`` (bool), ``seed`` (int, split seed), ``train_fraction`` (0 < f < 1).
    The archive may be the ``Caltech101.zip`` itself or a zip that holds it.
    """

    recipe = RECIPE
    all_by_splits = True  # "all" = train then test, not member order

    def _check_options(self, keep_background: bool = False, seed: int = 0, train_fraction: float = 0.8) -> dict:
        return {"keep_background": bool(keep_background), **check_seeded_options(seed, train_fraction)}

    @property
    def classes(self) -> tuple:
        return OBJECT_CLASSES + ((BACKGROUND,) if self.options["keep_background"] else ())

    def _samples(self, files, split):
        path = files[self.recipe.resources[0].filename]
        with open_archive(path) as outer:
            inner_name = next((m.name for m in outer.files(".zip") if m.name.endswith("Caltech101.zip")), None)
            archive = outer.open_archive(inner_name) if inner_name else outer
            names_by_class: dict = {}
            for m in archive.files(".bin"):
                names_by_class.setdefault(_member_class(m.name), []).append(m.name)
            classes = self.classes
            by_label = {label: names_by_class.get(cls, ()) for label, cls in enumerate(classes)}
            chosen = seeded_split(by_label, split, self.options["seed"], self.options["train_fraction"])
            yield from atis_archive_samples(archive, classes, lambda n: _member_class(n) if n in chosen else None)
