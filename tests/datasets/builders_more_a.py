"""Miniature archives in the real layouts of SHD, SSC, N-TIDIGITS, ASL-DVS, POKER-DVS, ST-MNIST,
DVS-Lip and Bullying10K, written with h5py, scipy.io.savemat and numpy (see
docs/datasets.md for the layouts). Each builder returns the files
``{name: bytes}`` and what the dataset should yield."""
from __future__ import annotations

import io

import h5py
import numpy as np

from tests.datasets.builders import tar_gz_bytes, zip_bytes


def _h5_bytes(tmp_path, name, fill) -> bytes:
    p = tmp_path / name
    with h5py.File(p, "w") as f:
        fill(f)
    data = p.read_bytes()
    p.unlink()
    return data


def heidelberg_files(tmp_path, prefix, splits, n_classes, per_split=6, seed=0):
    """``{<prefix>_<split>.h5.zip: bytes}`` and, per split, a list of (times, units, label, speaker)."""
    from neurodata.datasets import get

    rng = np.random.default_rng(seed)
    files, expected = {}, {}
    keys = np.array([c.replace("fuenf", "fünf").encode() for c in get(prefix).recipe.classes])
    for split in splits:
        samples = []
        for i in range(per_split):
            n = int(rng.integers(0, 40)) if i else 0           # sample 0 is empty
            times = np.sort(rng.uniform(0, 1.2, n)).astype(np.float32)
            if i == 1 and n > 1:
                times = times[::-1].copy()                     # out of order: sorted stably on load
            units = rng.integers(0, 700, n).astype(np.uint16)
            samples.append((times, units, int(rng.integers(0, n_classes)), int(rng.integers(0, 12))))

        def fill(f, samples=samples):
            vf, vu = h5py.vlen_dtype(np.float32), h5py.vlen_dtype(np.uint16)
            t = f.create_dataset("spikes/times", (len(samples),), dtype=vf)
            u = f.create_dataset("spikes/units", (len(samples),), dtype=vu)
            for i, (ti, ui, _, _) in enumerate(samples):
                t[i], u[i] = ti, ui
            f["labels"] = np.array([s[2] for s in samples], np.uint8)
            f["extra/speaker"] = np.array([s[3] for s in samples], np.uint16)
            f["extra/keys"] = keys  # as published: the class names, German ones with umlauts

        h5 = _h5_bytes(tmp_path, f"{prefix}_{split}.h5", fill)
        files[f"{prefix}_{split}.h5.zip"] = zip_bytes({f"{prefix}_{split}.h5": h5})
        expected[split] = samples
    return files, expected


def ntidigits_file(tmp_path, seed=0):
    """``{"n-tidigits.hdf5": bytes}`` and per split a list of (key, timestamps, addresses)."""
    rng = np.random.default_rng(seed)
    keys = {"train": ["man-im-a-7", "woman-ab-b-z", "boy-cd-a-1z3", "girl-ef-b-o"],
            "test": ["man-xy-a-9", "woman-qq-a-55"]}
    expected = {}

    def fill(f):
        for split, names in keys.items():
            f[f"{split}_labels"] = np.array([k.encode() for k in names])
            rows = []
            for k in names:
                n = int(rng.integers(1, 30))
                ts = np.sort(rng.uniform(0, 0.9, n))
                addr = rng.integers(0, 64, n).astype(np.int16)
                f[f"{split}_timestamps/{k}"] = ts
                f[f"{split}_addresses/{k}"] = addr
                rows.append((k, ts, addr))
            expected[split] = rows

    return {"n-tidigits.hdf5": _h5_bytes(tmp_path, "n-tidigits.hdf5", fill)}, expected


def mat_bytes(variables: dict, compress: bool) -> bytes:
    import scipy.io

    buf = io.BytesIO()
    scipy.io.savemat(buf, variables, do_compression=compress)
    return buf.getvalue()


def asldvs_file(letters=("a", "i", "k", "y"), per_letter=5, seed=0):
    """``ICCV2019_DVS_dataset.zip`` holding one ``<letter>.zip`` per letter with
    ``<letter>/<letter>_NNNN.mat`` (compressed and uncompressed MAT v5), and the stored columns."""
    rng = np.random.default_rng(seed)
    inner, raw = {}, {}
    for li, letter in enumerate(letters):
        members = {}
        for i in range(per_letter):
            n = int(rng.integers(1, 50))
            cols = {"ts": np.sort(rng.integers(10**6, 2 * 10**6, n)).astype(np.float64).reshape(-1, 1),
                    "x": rng.integers(0, 240, n).astype(np.float64).reshape(-1, 1),
                    "y": rng.integers(0, 180, n).astype(np.float64).reshape(-1, 1),
                    "pol": rng.integers(0, 2, n).astype(np.float64).reshape(-1, 1)}
            name = f"{letter}/{letter}_{i + 1:04d}.mat"
            members[name] = mat_bytes(cols, compress=bool((i + li) % 2))
            raw[name] = cols
        inner[f"{letter}.zip"] = zip_bytes(members)
    return {"ICCV2019_DVS_dataset.zip": zip_bytes(inner)}, raw


def pokerdvs_files(per_class=3, seed=0):
    """``pips_{train,test}.tar.gz`` with ``pips_<split>/<class>/<n>.npy`` (N, 4) t, x, y, p."""
    rng = np.random.default_rng(seed)
    files, raw = {}, {}
    for split in ("train", "test"):
        members = {}
        for cls in ("cl", "he", "di", "sp"):
            for i in range(per_class):
                n = int(rng.integers(1, 40))
                arr = np.stack([np.sort(rng.integers(5000, 90000, n)), rng.integers(0, 35, n),
                                rng.integers(0, 35, n), rng.integers(0, 2, n)], axis=1).astype(np.int64)
                buf = io.BytesIO()
                np.save(buf, arr)
                name = f"pips_{split}/{cls}/{cls}_{i}.npy"
                members[name] = buf.getvalue()
                raw[name] = arr
        files[f"pips_{split}.tar.gz"] = tar_gz_bytes(members)
    return files, raw


def stmnist_file(per_digit=5, seed=0):
    """The ST-MNIST zip with ``.../data_submission/<digit>/<n>.mat`` (``spiketrain`` 101 × N) and a LUT."""
    rng = np.random.default_rng(seed)
    members, raw = {}, {}
    root = "STMNIST dataset NUS Tee Research Group/data_submission"
    for d in range(10):
        for i in range(per_digit):
            n = int(rng.integers(1, 30))
            st = np.zeros((101, n))
            for k in range(n):  # one or two taxels per column, +1 or -1
                for a in rng.choice(100, int(rng.integers(1, 3)), replace=False):
                    st[a, k] = rng.choice([-1.0, 1.0])
            st[100] = np.sort(rng.uniform(0, 2.0, n))
            name = f"{root}/{d}/{d}_{i:03d}.mat"
            members[name] = mat_bytes({"spiketrain": st}, compress=bool(i % 2))
            raw[name] = st
    members[f"{root}/LUT.mat"] = mat_bytes({"LUT": np.arange(100.0).reshape(10, 10)}, compress=False)
    return {"STMNIST dataset NUS Tee Research Group.zip": zip_bytes(members)}, raw


LIP_DTYPE = np.dtype([("t", "<i4"), ("x", "i1"), ("y", "i1"), ("p", "i1")])


def dvslip_file(words=("accused", "benefit", "young"), per_word=2, seed=0):
    """``DVS-Lip.zip`` with ``DVS-Lip/{train,test}/<word>/<n>.npy`` structured (t i4, x, y, p i1)."""
    rng = np.random.default_rng(seed)
    members, raw = {}, {}
    for split in ("train", "test"):
        for w in words:
            for i in range(per_word):
                n = int(rng.integers(1, 60))
                arr = np.zeros(n, LIP_DTYPE)
                arr["t"] = np.sort(rng.integers(0, 1_000_000, n))
                arr["x"], arr["y"] = rng.integers(0, 128, n), rng.integers(0, 128, n)
                arr["p"] = rng.choice([0, 1], n)  # the authors' loader maps 0 to -1: files hold 0/1
                buf = io.BytesIO()
                np.save(buf, arr)
                name = f"DVS-Lip/{split}/{w}/{i}.npy"
                members[name] = buf.getvalue()
                raw[name] = arr
    return {"DVS-Lip.zip": zip_bytes(members)}, raw


DV_DTYPE = np.dtype([("timestamp", "<i8"), ("x", "<i2"), ("y", "<i2"), ("polarity", "i1"), ("_p1", "i1"),
                     ("_p2", "<i2")])


def dv_object_npy(packets) -> bytes:
    """What ``np.save(path, [packet arrays])`` writes for packets of different lengths: a pickled object array."""
    arr = np.empty(len(packets), object)
    for i, pk in enumerate(packets):
        arr[i] = pk
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def bullying_files(classes=("handshake", "slapping", "kicking"), per_class=4, seed=0):
    """``<class>.zip`` with ``<class>/<take>/<n>.npy`` pickled object arrays of dv packets."""
    rng = np.random.default_rng(seed)
    files, raw = {}, {}
    for cls in classes:
        members = {}
        for i in range(per_class):
            packets, t = [], 1_690_000_000_000_000 + int(rng.integers(0, 10**9))
            for _ in range(int(rng.integers(1, 4))):
                n = int(rng.integers(1, 20))
                pk = np.zeros(n, DV_DTYPE)
                pk["timestamp"] = t + np.sort(rng.integers(0, 10_000, n))
                t += 10_000
                pk["x"], pk["y"] = rng.integers(0, 346, n), rng.integers(0, 260, n)
                pk["polarity"] = rng.integers(0, 2, n)
                packets.append(pk)
            name = f"{cls}/take{i % 2}/{cls}_{i}.npy"
            members[name] = dv_object_npy(packets)
            raw[name] = np.concatenate(packets)
        files[f"{cls}.zip"] = zip_bytes(members)
    return files, raw
