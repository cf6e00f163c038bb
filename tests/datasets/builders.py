"""Miniature dataset archives in each dataset's exact real layout, written with the project's own
writers, and recipes that point at them (same code path as the real recipes, other bytes)."""
from __future__ import annotations

import dataclasses
import io
import tarfile
import zipfile

import numpy as np

import neurodata
from neurodata.download import file_digest
from tests.helpers import random_events


def _bin(events, fmt, tmp_path, **kw) -> bytes:
    p = tmp_path / f"member.{fmt}"
    neurodata.write(p, events, fmt, **kw)
    return p.read_bytes()


def zip_bytes(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tar_gz_bytes(members: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def nmnist_archives(tmp_path, per_class=2, seed=0):
    """``{"train.zip": bytes, "test.zip": bytes}`` and the expected samples per split (sorted member order)."""
    rng = np.random.default_rng(seed)
    out, expected = {}, {}
    for split, folder in (("train", "Train"), ("test", "Test")):
        members, exp = {}, []
        for digit in range(10):
            for k in range(per_class):
                ev = random_events(int(rng.integers(1, 60)), (34, 34, 2), duration_us=300_000, seed=int(rng.integers(1 << 30)))
                name = f"{folder}/{digit}/{k * 7 + digit:05d}.bin"
                members[name] = _bin(ev, "nmnist", tmp_path)
                exp.append((name, ev, digit))
        out[f"{split}.zip"] = zip_bytes(members)
        expected[split] = sorted(exp, key=lambda e: e[0])
    return out, expected


def cifar_archives(tmp_path, indices=(0, 99, 100, 899, 900), seed=0):
    """Ten ``<class>.zip`` with ``<class>/cifar10_<class>_<i>.aedat`` (AEDAT 2.0 DVS128) for the file
    indices ``i`` given, and the raw events by ``(class, i)``."""
    from neurodata.datasets.cifar10dvs import RECIPE

    rng = np.random.default_rng(seed)
    out, raw = {}, {}
    for cls in RECIPE.classes:
        members = {}
        for i in indices:
            ev = random_events(int(rng.integers(1, 50)), (128, 128, 2), duration_us=10**6, seed=int(rng.integers(1 << 30)))
            ev["t"] += 5_000_000  # absolute clock
            members[f"{cls}/cifar10_{cls}_{i}.aedat"] = _bin(ev, "aedat2", tmp_path, sensor_size=(128, 128, 2))
            raw[(cls, i)] = ev
        out[f"{cls}.zip"] = zip_bytes(members)
    return out, raw


def gesture_archive(tmp_path, seed=0):
    """``DvsGesture.tar.gz`` with two recordings (one train, one test), label CSVs and trial lists."""
    rng = np.random.default_rng(seed)
    members, recordings = {}, {}
    for user, lighting in (("user01", "fluorescent"), ("user24", "led")):
        ev = random_events(3000, (128, 128, 2), duration_us=12_000_000, seed=int(rng.integers(1 << 30)))
        ev["t"] += 1_000_000
        rows = [(1, 2_000_000, 3_000_000), (8, 3_000_000, 4_500_000), (11, 5_000_000, 6_000_000),
                (8, 7_000_000, 8_000_000)]
        csv = "class,startTime_usec,endTime_usec\r\n" + "".join(f"{c},{a},{b}\r\n" for c, a, b in rows)
        base = f"DvsGesture/{user}_{lighting}"
        members[base + ".aedat"] = _bin(ev, "aedat31", tmp_path, sensor_size=(128, 128, 2))
        members[base + "_labels.csv"] = csv.encode()
        recordings[f"{user}_{lighting}.aedat"] = (ev, rows)
    members["DvsGesture/trials_to_train.txt"] = b"user01_fluorescent.aedat\n"
    members["DvsGesture/trials_to_test.txt"] = b"user24_led.aedat\n"
    return {"DvsGesture.tar.gz": tar_gz_bytes(members)}, recordings


def caltech_archive(tmp_path, classes=("Faces_easy", "accordion", "BACKGROUND_Google"), per_class=5, seed=0):
    """``Caltech101.zip`` with ``Caltech101/<class>/image_XXXX.bin`` (ATIS binary, ≤ 240×180)."""
    rng = np.random.default_rng(seed)
    members = {}
    for cls in classes:
        for i in range(per_class):
            ev = random_events(int(rng.integers(1, 40)), (240, 180, 2), duration_us=300_000, seed=int(rng.integers(1 << 30)))
            members[f"Caltech101/{cls}/image_{i + 1:04d}.bin"] = _bin(ev, "nmnist", tmp_path)
    return {"Caltech101.zip": zip_bytes(members)}, members


def mini_class(cls, files: dict, base_url: str, tmp_path):
    """A subclass of dataset ``cls`` whose recipe lists ``files`` (name -> bytes) with their real
    names, served under ``base_url/<name>`` and with their real sha256 checksums."""
    resources = []
    by_name = {r.filename: r for r in cls.recipe.resources}
    for name, data in files.items():
        p = tmp_path / f"checksum-{name}"
        p.write_bytes(data)
        res = by_name[name]
        resources.append(dataclasses.replace(res, urls=(f"{base_url}/{name}",),
                                             checksum="sha256:" + file_digest(p, "sha256"), size=len(data)))
        p.unlink()
    recipe = dataclasses.replace(cls.recipe, resources=tuple(resources), download="automatic")
    return type(f"Mini{cls.__name__}", (cls,), {"recipe": recipe})
