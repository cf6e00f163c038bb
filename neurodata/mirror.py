"""A lab mirror: dataset archives laid out as ``<mirror>/<name>/<file name>`` with a manifest.

``build_mirror`` copies (or hard-links) archives already fetched, or given with ``source``, into a
mirror folder and records each file in ``MANIFEST.json``; ``verify_mirror`` re-hashes the folder
against the manifest and the recipes. ``neurodata.serve`` serves such a folder over HTTP, and the
fetcher consumes it as ``--mirror URL`` / ``NEURODATA_MIRROR``. The manifest is a hint for people
and tools: a fetch always checks the recipe's checksum, never the manifest's.

Manifest (``MANIFEST.json``, UTF-8 JSON, written atomically)::

    {"format": "neurodata-mirror", "version": 1, "updated": "2025-01-31T12:00:00Z",
     "files": [{"path": "nmnist/train.zip", "dataset": "nmnist", "file": "train.zip",
                "size": 1011893601, "md5": "<32 hex>", "sha256": "<64 hex>",
                "recipe_checksum": "md5:20959b8e626244a1b502305a9e6e2031", "verified": true,
                "added": "2025-01-31T12:00:00Z"}]}
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ._filelock import FileLock
from .download import CHUNK, parse_checksum

__all__ = ["MANIFEST", "build_mirror", "verify_mirror", "read_manifest", "parse_manifest", "BuildReport",
           "MirrorReport"]

MANIFEST = "MANIFEST.json"
FORMAT, VERSION = "neurodata-mirror", 1


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _digests(path, copy_to=None) -> tuple[int, str, str]:
    """``(size, md5 hex, sha256 hex)`` of ``path`` in one pass, writing the bytes read to the
    open binary file ``copy_to`` when given (a copy whose digests are those of the bytes written)."""
    md5, sha = hashlib.md5(), hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            md5.update(block)
            sha.update(block)
            size += len(block)
            if copy_to is not None:
                copy_to.write(block)
    return size, md5.hexdigest(), sha.hexdigest()


def _recipe_problem(resource, size: int, md5: str, sha256: str) -> str | None:
    """Why a file with these digests is not ``resource`` according to its recipe (None: it is)."""
    if resource.size is not None and size != resource.size:
        return f"size {size} bytes, the recipe says {resource.size}"
    if resource.checksum:
        algo, digest = parse_checksum(resource.checksum)
        actual = {"md5": md5, "sha256": sha256}[algo]
        if actual != digest:
            return f"{algo} {actual}, the recipe says {digest}"
    return None


def _recipes(names) -> list:
    """Recipes for ``names``: registry names, ``Recipe`` objects or dataset classes (None: every
    registered dataset that has files to mirror, i.e. not generated locally)."""
    from .datasets import REGISTRY, get
    from .datasets._recipe import Recipe

    if names is None:
        return [r for r in (get(n).recipe for n in REGISTRY) if r.download != "generated"]
    if isinstance(names, (str, Recipe)) or hasattr(names, "recipe"):
        names = [names]
    out = []
    for item in names:
        recipe = item if isinstance(item, Recipe) else getattr(item, "recipe", None)
        out.append(recipe if recipe is not None else get(str(item)).recipe)
    return out


# -- manifest -------------------------------------------------------------------------------------
def read_manifest(directory) -> dict:
    """The manifest of mirror ``directory`` as a dict (``files`` a list of entries).

    Raises ``FileNotFoundError`` when there is none and ``ValueError`` (naming the file) when it is
    not a neurodata mirror manifest.
    """
    path = Path(directory) / MANIFEST
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist: not a mirror folder yet "
                                f"(create one with `neurodata mirror build {directory}`)") from None
    return parse_manifest(raw, path)


def parse_manifest(raw: bytes, path="MANIFEST.json") -> dict:
    """Parse and check manifest bytes (``path`` only names them in errors); see ``read_manifest``."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e}); rebuild it with `neurodata mirror build`") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("files"), list):
        raise ValueError(f"{path}: expected a JSON object with \"format\": \"{FORMAT}\" and a \"files\" list")
    if data.get("version") != VERSION:
        raise ValueError(f"{path}: manifest version {data.get('version')!r}, this neurodata reads {VERSION}")
    for entry in data["files"]:
        if not (isinstance(entry, dict) and {"path", "dataset", "file", "size", "sha256"} <= entry.keys()
                and all(_plain_name(entry[k]) for k in ("dataset", "file"))
                and entry["path"] == f"{entry['dataset']}/{entry['file']}"):
            raise ValueError(f"{path}: malformed entry {entry!r} (expected \"path\": \"<dataset>/<file>\", "
                             "plain names, size and sha256)")
    return data


def _plain_name(name) -> bool:
    """A single path component: no separators, not ``.``/``..``, no NUL, not hidden."""
    return (isinstance(name, str) and name not in ("", ".", "..") and not name.startswith(".")
            and not any(c in name for c in "/\\\0"))


def _write_manifest(directory: Path, entries: dict) -> Path:
    data = {"format": FORMAT, "version": VERSION, "updated": _now(),
            "files": [entries[k] for k in sorted(entries)]}
    fd, tmp = tempfile.mkstemp(prefix=f".{MANIFEST}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, directory / MANIFEST)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return directory / MANIFEST


# -- build ----------------------------------------------------------------------------------------
@dataclass
class BuildReport:
    """What ``build_mirror`` did. ``added``: manifest entries written now; ``unchanged``: paths
    already in place with the same bytes; ``missing``: ``(dataset, file)`` found nowhere;
    ``rejected``: ``(dataset, file, candidate path, reason)`` found only with bytes the recipe
    does not accept (not added)."""

    manifest: Path
    added: list = field(default_factory=list)
    unchanged: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    rejected: list = field(default_factory=list)


def _candidates(recipe, resource, source, root: Path) -> list[Path]:
    from .datasets._base import find_source

    out = []
    if source is not None:
        source = Path(source).expanduser()
        if source.is_dir():
            out += [source / recipe.name / n for n in (resource.filename, *resource.aliases)]
        found = find_source(source, resource)
        if found is not None:
            out.append(found)
    out.append(root / recipe.name / resource.filename)
    seen, unique = set(), []
    for p in out:
        if p.is_file() and p.resolve() not in seen:
            seen.add(p.resolve())
            unique.append(p)
    return unique


def _place(src: Path, dest: Path, link: bool):
    """Hard-link (or copy) ``src`` to a temporary name next to ``dest``: ``(that name, digests)``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    tmp = Path(tmp)
    try:
        if link:
            os.close(fd)
            tmp.unlink()
            try:
                os.link(src, tmp)
                return tmp, _digests(tmp)
            except OSError:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as out:
            digests = _digests(src, copy_to=out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        return tmp, digests
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _already_there(src: Path, dest: Path):
    """Digests of ``dest`` when it already holds the bytes of ``src`` (same inode, or the same size
    and digests: nothing is written), else None."""
    if dest.is_symlink() or not dest.is_file():  # a link is replaced by the file: serve refuses links
        return None
    if os.path.samefile(src, dest):
        return _digests(dest)
    if dest.stat().st_size != src.stat().st_size:
        return None
    there = _digests(dest)
    return there if _digests(src) == there else None


def build_mirror(directory, names=None, *, root=None, source=None, link: bool = True) -> BuildReport:
    """Lay out dataset archives as a mirror folder and record them in ``MANIFEST.json``.

    Parameters
    ----------
    directory : path
        The mirror folder (created). Files go to ``directory/<name>/<file name>``, the names the
        original hosts serve (an alias found in ``source`` is stored under the recipe's name).
    names : str, sequence of str, ``Recipe`` or dataset class, optional
        The datasets to add (default: every registered dataset that is downloaded, not generated;
        those with no file anywhere are reported as missing and skipped).
    root : path, optional
        Cache root whose ``<root>/<name>/`` holds archives already fetched (default as for datasets:
        ``$NEURODATA_HOME`` or the user cache dir). Looked at after ``source``.
    source : path, optional
        A folder holding archives (also as ``<name>/<file>``, under aliases too), or one archive.
    link : bool
        Hard-link when the mirror is on the same filesystem (no extra space); False always copies.

    Each file is hashed (size, md5, sha256) and compared with its recipe: the first candidate the
    recipe accepts is placed atomically (temporary name, then ``os.replace``); one the recipe
    rejects is not added (see ``BuildReport.rejected``). A resource whose recipe has no checksum is
    added with ``"verified": false``. Entries of other files already in the manifest are kept.
    """
    directory = Path(directory).expanduser()
    from .cache import cache_root

    directory.mkdir(parents=True, exist_ok=True)
    root = cache_root(root)
    recipes = _recipes(names)
    report = BuildReport(manifest=directory / MANIFEST)
    with FileLock(directory / f".{MANIFEST}.lock", waiting=f"waiting for another build of {directory}"):
        try:
            entries = {e["path"]: e for e in read_manifest(directory)["files"]}
        except FileNotFoundError:
            entries = {}
        for recipe in recipes:
            for res in recipe.resources:
                entry = _add_resource(directory, recipe, res, source, root, link, report, entries)
                if entry is not None:
                    entries[entry["path"]] = entry
        _write_manifest(directory, entries)
    return report


def _add_resource(directory: Path, recipe, res, source, root: Path, link: bool, report: BuildReport,
                  previous: dict):
    rel = f"{recipe.name}/{res.filename}"
    dest = directory / recipe.name / res.filename
    candidates = _candidates(recipe, res, source, root)
    if not candidates:
        report.missing.append((recipe.name, res.filename))
        return None
    dest.parent.mkdir(exist_ok=True)
    first_problem = None
    for src in candidates:
        digests = _already_there(src, dest)
        placed = None
        if digests is None:
            placed, digests = _place(src, dest, link)
        try:
            problem = _recipe_problem(res, *digests)
            if problem is not None:
                first_problem = first_problem or (recipe.name, res.filename, src, problem)
                continue
            if placed is not None:
                os.replace(placed, dest)
        finally:
            if placed is not None:
                placed.unlink(missing_ok=True)
        size, md5, sha256 = digests
        old = previous.get(rel, {})
        entry = {"path": rel, "dataset": recipe.name, "file": res.filename, "size": size, "md5": md5,
                 "sha256": sha256, "recipe_checksum": res.checksum, "verified": bool(res.checksum),
                 "added": old["added"] if old.get("sha256") == sha256 and "added" in old else _now()}
        if placed is None:
            report.unchanged.append(rel)
        else:
            report.added.append(entry)
        return entry
    report.rejected.append(first_problem)
    return None


# -- verify ---------------------------------------------------------------------------------------
@dataclass
class MirrorReport:
    """What ``verify_mirror`` found. ``ok``: paths whose bytes match the manifest and the recipe
    (or whose recipe has no checksum: those are also noted in ``unchecked``);
    ``missing``: listed but absent; ``corrupt``: ``(path, reason)`` whose bytes differ from the
    manifest (or that are not regular files inside the mirror); ``rejected``: ``(path, reason)``
    that match the manifest but not the current recipe (a fetch would refuse them); ``unknown``:
    files in the folder the manifest does not list (the service does not serve them);
    ``unchecked``: ``(path, reason)`` that no recipe could confirm: the recipe has no checksum, or
    the dataset is not in the registry (checked against the manifest only; not a failure)."""

    directory: Path
    ok: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    corrupt: list = field(default_factory=list)
    rejected: list = field(default_factory=list)
    unknown: list = field(default_factory=list)
    unchecked: list = field(default_factory=list)

    @property
    def sound(self) -> bool:
        """True when nothing is missing, corrupt, rejected or unknown."""
        return not (self.missing or self.corrupt or self.rejected or self.unknown)


def verify_mirror(directory, *, recipes=None) -> MirrorReport:
    """Re-hash every file of mirror ``directory`` against its manifest and the recipes.

    ``recipes`` (``Recipe`` objects or dataset classes) replace the registry's recipe of the same
    name; datasets in neither are checked against the manifest only (``unchecked``). Raises
    ``FileNotFoundError`` / ``ValueError`` when the manifest is absent or unreadable.
    """
    directory = Path(directory).expanduser()
    manifest = read_manifest(directory)
    override = {r.name: r for r in _recipes(recipes)} if recipes is not None else {}
    report = MirrorReport(directory=directory)
    top = os.path.realpath(directory)
    listed = set()
    for entry in manifest["files"]:
        rel = entry["path"]
        listed.add(rel)
        path = directory / rel
        real = os.path.realpath(path)
        if not real.startswith(top + os.sep):
            report.corrupt.append((rel, f"its real path {real} is outside the mirror (a link pointing out)"))
            continue
        if not os.path.exists(real):  # absent, or a link to nothing
            report.missing.append(rel)
            continue
        if not stat.S_ISREG(os.stat(real).st_mode):
            report.corrupt.append((rel, "not a regular file"))
            continue
        size, md5, sha256 = _digests(path)
        wrong = [f"{k} {v}, the manifest says {entry.get(k)}" for k, v in
                 (("size", size), ("sha256", sha256), ("md5", md5)) if k in entry and entry[k] != v]
        if wrong:
            report.corrupt.append((rel, "; ".join(wrong)))
            continue
        recipe = override.get(entry["dataset"]) or _registry_recipe(entry["dataset"])
        res = next((r for r in recipe.resources if r.filename == entry["file"]), None) if recipe else None
        if recipe is None:
            report.unchecked.append((rel, f"no dataset {entry['dataset']!r} in the registry"))
        elif res is None:
            report.rejected.append((rel, f"{recipe.name}'s recipe does not list {entry['file']}"))
        elif (problem := _recipe_problem(res, size, md5, sha256)) is not None:
            report.rejected.append((rel, problem))
        else:
            report.ok.append(rel)
            if not res.checksum:
                report.unchecked.append((rel, "the recipe has no checksum"))
    ignore = {MANIFEST, f".{MANIFEST}.lock"}
    for dirpath, dirnames, filenames in os.walk(directory):
        for name in filenames:
            rel = Path(dirpath, name).relative_to(directory).as_posix()
            if rel not in ignore and rel not in listed:
                report.unknown.append(rel)
    report.unknown.sort()
    return report


def _registry_recipe(name: str):
    from .datasets import REGISTRY, get

    return get(name).recipe if name in REGISTRY else None
