"""Lab mirrors end to end, offline: machine 1 fetches miniature datasets from their "original host"
(a local HTTP server), lays them out with ``build_mirror`` and serves them; machine 2 (a second root
folder) fetches every dataset from the service while the original host answers 404 only, and gets
identical samples. Corruption is caught by ``verify_mirror`` / ``neurodata mirror verify`` and
rejected by the fetcher, whose checksums come from the recipe, never from the mirror."""
import hashlib
import json
import logging
import os

import numpy as np
import pytest
from click.testing import CliRunner

from neurodata import ChecksumError, DownloadError
from neurodata.cli import main
from neurodata.datasets import get
from neurodata.mirror import MANIFEST, build_mirror, read_manifest, verify_mirror
from neurodata.serve import serve_in_background
from tests.datasets.mirror_support import (DOWNLOADABLE, MINI_ARCHIVES, CuttingProxy, mini_dataset,
                                           no_mirror_reason, url_path)


def _kill_original(server, name, files):
    for fname in files:
        server.fail(url_path(name, fname), status=404, times=10_000)


def _samples(ds):
    return [ds[i] for i in range(len(ds))]


def _same_samples(a, b):
    assert len(a) == len(b) > 0
    for (ea, la), (eb, lb) in zip(a, b):
        assert la == lb and ea.dtype == eb.dtype and np.array_equal(ea, eb)


@pytest.fixture
def machine1(http_server, tmp_path, no_env):
    """``make(name, manual=False) -> (cls, files)``: a miniature dataset fetched into machine 1's
    root (``tmp_path/root1``) from the original host."""
    def make(name, manual=False):
        cls, files = mini_dataset(name, http_server, tmp_path, manual=manual)
        if manual:
            for fname, data in files.items():
                (tmp_path / "root1" / name).mkdir(parents=True, exist_ok=True)
                (tmp_path / "root1" / name / fname).write_bytes(data)
        cls(root=tmp_path / "root1", split="all")
        return cls, files
    return make


@pytest.mark.parametrize("name", DOWNLOADABLE)
def test_second_machine_fetches_from_the_served_mirror(name, machine1, http_server, tmp_path, caplog):
    if reason := no_mirror_reason(name):
        pytest.skip(f"{name}: {reason}")
    if name not in MINI_ARCHIVES:
        pytest.skip(f"no miniature archive builder for {name} in tests/datasets/mirror_support.py")
    cls, files = machine1(name)
    first = _samples(cls(root=tmp_path / "root1", split="all"))
    report = build_mirror(tmp_path / "mirror", [cls], root=tmp_path / "root1")
    assert sorted(e["path"] for e in report.added) == sorted(f"{name}/{f}" for f in files)
    assert not report.missing and not report.rejected
    assert verify_mirror(tmp_path / "mirror", recipes=[cls]).sound
    _kill_original(http_server, name, files)
    n_original = len(http_server.log)
    caplog.set_level(logging.INFO, logger="neurodata.serve")
    with serve_in_background(tmp_path / "mirror") as service:
        second = cls(root=tmp_path / "root2", split="all", mirror=service.url)
        _same_samples(first, _samples(second))
    assert len(http_server.log) == n_original            # the dead host was not even asked
    for fname, data in files.items():
        assert (tmp_path / "root2" / name / fname).read_bytes() == data
        assert any(f'"GET /{url_path(name, fname)} HTTP/1.1" 200' in r.getMessage() for r in caplog.records)


def test_manifest_records_sizes_digests_and_recipe_checks(machine1, tmp_path):
    cls, files = machine1("nmnist")
    build_mirror(tmp_path / "mirror", [cls], root=tmp_path / "root1")
    entries = {e["path"]: e for e in read_manifest(tmp_path / "mirror")["files"]}
    for res in cls.recipe.resources:
        data = files[res.filename]
        e = entries[f"nmnist/{res.filename}"]
        assert (e["dataset"], e["file"], e["size"]) == ("nmnist", res.filename, len(data))
        assert e["md5"] == hashlib.md5(data).hexdigest() and e["sha256"] == hashlib.sha256(data).hexdigest()
        assert e["recipe_checksum"] == res.checksum and e["verified"] is True
        mirrored = tmp_path / "mirror" / "nmnist" / res.filename
        assert mirrored.read_bytes() == data
        assert os.path.samefile(mirrored, tmp_path / "root1" / "nmnist" / res.filename)  # hard link
    # a second build changes nothing; another dataset merges into the same manifest
    again = build_mirror(tmp_path / "mirror", [cls], root=tmp_path / "root1")
    assert not again.added and sorted(again.unchanged) == sorted(entries)
    cifar, cifar_files = machine1("cifar10dvs")
    build_mirror(tmp_path / "mirror", [cifar], root=tmp_path / "root1", link=False)
    merged = {e["path"] for e in read_manifest(tmp_path / "mirror")["files"]}
    assert merged == set(entries) | {f"cifar10dvs/{f}" for f in cifar_files}
    copied = tmp_path / "mirror" / "cifar10dvs" / "airplane.zip"
    assert not os.path.samefile(copied, tmp_path / "root1" / "cifar10dvs" / "airplane.zip")
    inode = copied.stat().st_ino
    added_at = {e["path"]: e["added"] for e in read_manifest(tmp_path / "mirror")["files"]}
    again = build_mirror(tmp_path / "mirror", [cifar], root=tmp_path / "root1", link=False)
    assert not again.added and len(again.unchanged) == 10 and copied.stat().st_ino == inode  # not rewritten
    assert {e["path"]: e["added"] for e in read_manifest(tmp_path / "mirror")["files"]} == added_at
    assert not [p for p in (tmp_path / "mirror").rglob("*") if p.name.startswith(".")]  # no temp/lock left


def test_build_from_source_folder_accepts_aliases_and_rejects_wrong_bytes(http_server, tmp_path, no_env):
    cls, files = mini_dataset("nmnist", http_server, tmp_path)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "Train.zip").write_bytes(files["train.zip"])          # the authors' spelling
    (downloads / "test.zip").write_bytes(files["test.zip"][::-1])        # wrong bytes
    report = build_mirror(tmp_path / "mirror", [cls], root=tmp_path / "empty", source=downloads)
    assert [e["path"] for e in report.added] == ["nmnist/train.zip"]
    assert [(d, f) for d, f, _, _ in report.rejected] == [("nmnist", "test.zip")]
    assert "sha256" in report.rejected[0][3]
    assert (tmp_path / "mirror" / "nmnist" / "train.zip").read_bytes() == files["train.zip"]
    assert not (tmp_path / "mirror" / "nmnist" / "test.zip").exists()
    # one file given directly
    single = build_mirror(tmp_path / "mirror2", [cls], root=tmp_path / "empty", source=downloads / "Train.zip")
    assert [e["path"] for e in single.added] == ["nmnist/train.zip"] and single.missing == [("nmnist", "test.zip")]


def test_build_without_names_walks_the_registry(tmp_path, no_env):
    report = build_mirror(tmp_path / "mirror", root=tmp_path / "nothing")
    expected = {(n, r.filename) for n in DOWNLOADABLE for r in get(n).recipe.resources}
    assert set(report.missing) == expected and not report.added
    assert read_manifest(tmp_path / "mirror")["files"] == []
    with pytest.raises(ValueError, match="unknown dataset"):
        build_mirror(tmp_path / "mirror", ["no-such-dataset"], root=tmp_path)


def _corrupt(path, offset=10):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    # write a new file: the mirror's copy may be a hard link to machine 1's archive
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(bytes(data))
    os.replace(tmp, path)
    return bytes(data)


def test_corrupted_file_is_caught_by_verify_and_rejected_by_fetch(machine1, http_server, tmp_path):
    cls, files = machine1("nmnist")
    mirror = tmp_path / "mirror"
    build_mirror(mirror, [cls], root=tmp_path / "root1")
    bad = _corrupt(mirror / "nmnist" / "train.zip")
    report = verify_mirror(mirror, recipes=[cls])
    assert not report.sound and [p for p, _ in report.corrupt] == ["nmnist/train.zip"]
    assert "sha256" in report.corrupt[0][1] and report.ok == ["nmnist/test.zip"]
    _kill_original(http_server, "nmnist", files)
    with serve_in_background(mirror) as service:
        with pytest.raises(ChecksumError, match="train.zip"):
            cls(root=tmp_path / "root2", split="train", mirror=service.url)
        assert not [p.name for p in (tmp_path / "root2" / "nmnist").iterdir() if p.name.startswith("train.zip")]
        # a forged manifest (digests of the bad bytes) changes nothing: checksums come from the recipe
        manifest = json.loads((mirror / MANIFEST).read_text())
        for e in manifest["files"]:
            if e["file"] == "train.zip":
                e["sha256"], e["md5"] = hashlib.sha256(bad).hexdigest(), hashlib.md5(bad).hexdigest()
        (mirror / MANIFEST).write_text(json.dumps(manifest))
        forged = verify_mirror(mirror, recipes=[cls])
        assert not forged.corrupt and [p for p, _ in forged.rejected] == ["nmnist/train.zip"] and not forged.sound
        with pytest.raises(ChecksumError, match="train.zip"):
            cls(root=tmp_path / "root2", split="train", mirror=service.url)
        # while the original host is alive, a bad mirror only costs a detour
        http_server.files["nmnist/train.zip"].failures.clear()
        ds = cls(root=tmp_path / "root2", split="train", mirror=service.url)
        assert len(ds) == 10 and (tmp_path / "root2" / "nmnist" / "train.zip").read_bytes() == files["train.zip"]


def test_verify_reports_missing_unknown_and_link_escapes(machine1, tmp_path):
    cls, files = machine1("nmnist")
    mirror = tmp_path / "mirror"
    build_mirror(mirror, [cls], root=tmp_path / "root1")
    (mirror / "nmnist" / "test.zip").unlink()
    (mirror / "nmnist" / "notes.txt").write_text("hello")
    (mirror / "nmnist" / "train.zip").unlink()
    outside = tmp_path / "outside.zip"
    outside.write_bytes(files["train.zip"])
    os.symlink(outside, mirror / "nmnist" / "train.zip")
    report = verify_mirror(mirror, recipes=[cls])
    assert report.missing == ["nmnist/test.zip"] and report.unknown == ["nmnist/notes.txt"]
    assert [p for p, _ in report.corrupt] == ["nmnist/train.zip"] and "outside" in report.corrupt[0][1]
    assert not report.sound and not report.ok
    (mirror / MANIFEST).write_text('{"format": "neurodata-mirror", "version": 1, "files": '
                                   '[{"path": "../x", "dataset": "..", "file": "x", "size": 1, "sha256": "0"}]}')
    with pytest.raises(ValueError, match="malformed entry"):
        verify_mirror(mirror)
    with pytest.raises(FileNotFoundError, match="mirror build"):
        verify_mirror(tmp_path / "no-mirror")


def test_links_inside_the_mirror(machine1, tmp_path):
    """A link to nothing is reported missing (verify raised FileNotFoundError); a link that build
    finds where a file belongs is replaced by the file (it was called unchanged, and then verify
    and serve refused it)."""
    cls, files = machine1("nmnist")
    mirror = tmp_path / "mirror"
    build_mirror(mirror, [cls], root=tmp_path / "root1")
    (mirror / "nmnist" / "test.zip").unlink()
    os.symlink(mirror / "nmnist" / "gone.zip", mirror / "nmnist" / "test.zip")
    report = verify_mirror(mirror, recipes=[cls])
    assert report.missing == ["nmnist/test.zip"] and not report.corrupt
    (mirror / "nmnist" / "test.zip").unlink()
    os.symlink(tmp_path / "root1" / "nmnist" / "test.zip", mirror / "nmnist" / "test.zip")
    again = build_mirror(mirror, [cls], root=tmp_path / "root1")
    assert "nmnist/test.zip" in [e["path"] for e in again.added]
    assert not (mirror / "nmnist" / "test.zip").is_symlink() and verify_mirror(mirror, recipes=[cls]).sound


def test_mirror_urls_quote_file_names(http_server, tmp_path, no_env):
    """A mirror URL is <mirror>/<dataset>/<file> with the file name quoted: '#' and '?' are part
    of a name, not a fragment or a query (such files got 404)."""
    from neurodata.download import fetch_resource

    data = b"x" * 1000
    for name in ("a#b.zip", "a?b.zip", "a%41b.zip"):
        http_server.add(f"ds/{url_path('ds', name).split('/', 1)[1]}", data)
        out = fetch_resource([], tmp_path / name, md5=hashlib.md5(data).hexdigest(), dataset="ds",
                             mirrors=[http_server.url()], progress=False)
        assert out.read_bytes() == data


def test_manual_resource_comes_from_a_lab_mirror(machine1, http_server, tmp_path):
    # The real DVS128 Gesture archive has no URL (IBM's login page): a lab mirror serves it
    cls, files = machine1("dvsgesture", manual=True)
    build_mirror(tmp_path / "mirror", [cls], root=tmp_path / "root1")
    with serve_in_background(tmp_path / "mirror") as service:
        ds = cls(root=tmp_path / "root2", split="all", mirror=service.url)
        assert len(ds) == len(_samples(cls(root=tmp_path / "root1", split="all")))
    with pytest.raises(DownloadError, match="DvsGesture.tar.gz"):   # without the mirror: instructions
        cls(root=tmp_path / "root3", split="all")


def test_resume_through_the_service_after_a_cut(machine1, http_server, tmp_path, caplog):
    cls, files = machine1("ncaltech101")
    fname = "N-Caltech101-archive.zip"
    assert len(files[fname]) > 1000
    build_mirror(tmp_path / "mirror", [cls], root=tmp_path / "root1")
    _kill_original(http_server, "ncaltech101", files)
    caplog.set_level(logging.INFO, logger="neurodata.serve")
    with serve_in_background(tmp_path / "mirror") as service:
        proxy = CuttingProxy(service.port, cut_after=len(files[fname]) // 2)
        try:
            ds = cls(root=tmp_path / "root2", split="all", mirror=proxy.url)
        finally:
            proxy.close()
    lines = [r.getMessage() for r in caplog.records if f"/ncaltech101/{fname}" in r.getMessage()]
    assert len(lines) == 2 and '" 200 ' in lines[0]
    assert '" 206 ' in lines[1] and "range=bytes=" in lines[1]
    resumed_at = int(lines[1].split("range=bytes=")[1].split("-")[0])
    assert 0 < resumed_at < len(files[fname])
    assert (tmp_path / "root2" / "ncaltech101" / fname).read_bytes() == files[fname]
    _same_samples(_samples(ds), _samples(cls(root=tmp_path / "root1", split="all")))


def test_token_protected_mirror(machine1, http_server, tmp_path, monkeypatch):
    cls, files = machine1("nmnist")
    build_mirror(tmp_path / "mirror", [cls], root=tmp_path / "root1")
    _kill_original(http_server, "nmnist", files)
    with serve_in_background(tmp_path / "mirror", token="lab-secret-1") as service:
        with pytest.raises(DownloadError, match="NEURODATA_MIRROR_TOKEN"):
            cls(root=tmp_path / "root2", split="test", mirror=service.url)
        monkeypatch.setenv("NEURODATA_MIRROR_TOKEN", "lab-secret-1")
        monkeypatch.setenv("NEURODATA_MIRROR", service.url)       # the environment alone is enough
        ds = cls(root=tmp_path / "root2", split="test")
        assert len(ds) == 10


# -- the command line -------------------------------------------------------------------------------
def test_cli_build_and_verify(machine1, http_server, tmp_path, monkeypatch):
    cls, files = machine1("nmnist")
    runner = CliRunner()
    mirror = str(tmp_path / "mirror")
    # the real recipe rejects the miniature archives
    result = runner.invoke(main, ["mirror", "build", mirror, "nmnist", "--root", str(tmp_path / "root1")])
    assert result.exit_code == 1 and result.output.count("REJECTED") == 2 and "md5" in result.output
    result = runner.invoke(main, ["mirror", "build", mirror, "no-such-dataset"])
    assert result.exit_code == 2 and "unknown dataset" in result.output
    # with the miniature recipe registered under the name
    monkeypatch.setattr(get("nmnist"), "recipe", cls.recipe)
    result = runner.invoke(main, ["mirror", "build", mirror, "nmnist", "--root", str(tmp_path / "root1")])
    assert result.exit_code == 0, result.output
    assert "added     nmnist/train.zip" in result.output and "verified" in result.output
    result = runner.invoke(main, ["mirror", "verify", mirror])
    assert result.exit_code == 0 and "sound     2 files" in result.output
    _corrupt(tmp_path / "mirror" / "nmnist" / "test.zip")
    result = runner.invoke(main, ["mirror", "verify", mirror])
    assert result.exit_code == 1 and "CORRUPT   nmnist/test.zip" in result.output
    result = runner.invoke(main, ["mirror", "verify", str(tmp_path / "nothing")])
    assert result.exit_code == 1 and "mirror build" in result.output
    result = runner.invoke(main, ["mirror", "build", str(tmp_path / "empty"), "nmnist", "--root", str(tmp_path / "x")])
    assert result.exit_code == 1 and "nothing was added" in result.output


def test_concurrent_builds_merge_into_one_manifest(http_server, tmp_path, no_env):
    import threading

    classes = {name: mini_dataset(name, http_server, tmp_path) for name in ("nmnist", "cifar10dvs", "dvsgesture")}
    sources = {}
    for name, (cls, files) in classes.items():
        sources[name] = tmp_path / f"from-{name}"
        sources[name].mkdir()
        for fname, data in files.items():
            (sources[name] / fname).write_bytes(data)
    errors = []

    def build(name):
        try:
            build_mirror(tmp_path / "mirror", [classes[name][0]], root=tmp_path / "none", source=sources[name])
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=build, args=(n,)) for n in classes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    listed = {e["path"] for e in read_manifest(tmp_path / "mirror")["files"]}
    assert listed == {f"{n}/{f}" for n, (_, files) in classes.items() for f in files}
    assert verify_mirror(tmp_path / "mirror", recipes=[c for c, _ in classes.values()]).sound


def test_cli_fetch_through_a_served_mirror(machine1, http_server, tmp_path, monkeypatch):
    cls, files = machine1("cifar10dvs")
    build_mirror(tmp_path / "mirror", [cls], root=tmp_path / "root1")
    _kill_original(http_server, "cifar10dvs", files)
    monkeypatch.setattr(get("cifar10dvs"), "recipe", cls.recipe)
    with serve_in_background(tmp_path / "mirror") as service:
        result = CliRunner().invoke(main, ["fetch", "cifar10dvs", "--root", str(tmp_path / "root2"),
                                           "--mirror", service.url])
    assert result.exit_code == 0, result.output
    assert "cifar10dvs train: 10 samples ready" in result.output and "cifar10dvs test: 10 samples ready" in result.output
    for fname, data in files.items():
        assert (tmp_path / "root2" / "cifar10dvs" / fname).read_bytes() == data


@pytest.mark.parametrize("name", sorted(MINI_ARCHIVES))
def test_split_all_is_the_splits_concatenated(name, http_server, tmp_path, no_env):
    """``split="all"`` holds every split's samples, the splits in the recipe's order (docs: "the splits
    concatenated in that order"); seven datasets gave member order, train and test mixed, before."""
    cls, _ = mini_dataset(name, http_server, tmp_path)
    root = tmp_path / "root"
    every = cls(root=root, split="all")
    parts = [cls(root=root, split=s) for s in cls.recipe.splits]
    expected = [(ds.metadata(i)["source"], int(ds.targets[i])) for ds in parts for i in range(len(ds))]
    assert [(every.metadata(i)["source"], int(every.targets[i])) for i in range(len(every))] == expected
    assert len({s for s, _ in expected}) > 1 and all(len(ds) for ds in parts)
