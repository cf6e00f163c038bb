"""Helpers for the mirror and service tests: miniature datasets per registry name, raw HTTP
requests (any request target, byte for byte), a TCP proxy that cuts a connection, and an audit
hook that records every file the process opens."""
from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import sys
import threading
from urllib.parse import quote

from neurodata.datasets import REGISTRY, get
from neurodata.datasets._folder import FolderDataset
from neurodata.datasets._recipe import Resource
from tests.datasets import builders_more_a as more_a
from tests.datasets import builders_more_b as more_b
from tests.datasets.builders import (caltech_archive, cifar_archives, gesture_archive, mini_class,
                                     nmnist_archives, zip_bytes)

# registry name -> builder of {file name: bytes} in the real layout, every file ``split="all"``
# reads (tests/datasets/builders.py, builders_more_a.py, builders_more_b.py)
MINI_ARCHIVES = {
    "nmnist": lambda tmp: nmnist_archives(tmp, per_class=1)[0],
    "cifar10dvs": lambda tmp: cifar_archives(tmp, indices=(0, 900))[0],
    "dvsgesture": lambda tmp: gesture_archive(tmp)[0],
    "ncaltech101": lambda tmp: {"N-Caltech101-archive.zip": zip_bytes(
        {"Caltech101.zip": caltech_archive(tmp, per_class=3)[0]["Caltech101.zip"]})},
    "shd": lambda tmp: more_a.heidelberg_files(tmp, "shd", ("train", "test"), 20)[0],
    "ssc": lambda tmp: more_a.heidelberg_files(tmp, "ssc", ("train", "valid", "test"), 35, per_split=4)[0],
    "ntidigits": lambda tmp: more_a.ntidigits_file(tmp)[0],
    "asldvs": lambda tmp: more_a.asldvs_file()[0],
    "pokerdvs": lambda tmp: more_a.pokerdvs_files()[0],
    "stmnist": lambda tmp: more_a.stmnist_file()[0],
    "dvslip": lambda tmp: more_a.dvslip_file()[0],
    "bullying10k": lambda tmp: more_a.bullying_files()[0],
    "ncars": lambda tmp: more_b.ncars_archives(tmp)[0],
    "navgesture-walk": lambda tmp: more_b.nav_archive(tmp, "walk")[0],
    "navgesture-sit": lambda tmp: more_b.nav_archive(tmp, "sit")[0],
    "hardvs": lambda tmp: more_b.hardvs_files(tmp)[0],
}

# class attributes a miniature needs besides its recipe (ASL-DVS checks the archive's content)
MINI_CLASS_ATTRS = {"asldvs": {"expected_count": 20, "required_letters": ("a", "i", "k", "y")}}

DOWNLOADABLE = [n for n in REGISTRY if get(n).recipe.download != "generated"]


def no_mirror_reason(name) -> str | None:
    """Why a served mirror cannot deliver ``name``'s samples by design, or None when it can."""
    cls = get(name)
    if not cls.recipe.resources:
        return "no downloadable files: read from an extracted folder"
    if issubclass(cls, FolderDataset):
        return ("read from an extracted folder: its listed files are archives this package does not "
                "decode (extracted by hand), so mirrored copies cannot yield samples")
    return None


def url_path(name, fname) -> str:
    """``<name>/<fname>`` as it appears in a request target (a space is sent as %20)."""
    return f"{name}/{quote(fname)}"


def mini_dataset(name, server, tmp_path, manual: bool = False):
    """``(class, files)``: a miniature ``name`` whose files are served by the test ``server`` under
    ``<name>/<file>`` (the "original host"). ``manual=True`` keeps the real recipe's URL-less
    (manual download) resources URL-less."""
    files = MINI_ARCHIVES[name](tmp_path)
    for fname, data in files.items():
        server.add(url_path(name, fname), data)
    cls = mini_class(get(name), files, server.url(name).rstrip("/"), tmp_path)
    for attr, value in MINI_CLASS_ATTRS.get(name, {}).items():
        setattr(cls, attr, value)
    if manual:
        real = {r.filename: r for r in get(name).recipe.resources}
        resources = tuple(dataclasses.replace(r, urls=()) if not real[r.filename].urls else r
                          for r in cls.recipe.resources)
        cls.recipe = dataclasses.replace(cls.recipe, resources=resources, download="manual")
    return cls, files


def recipe_for(base_recipe, files: dict):
    """``base_recipe`` listing exactly ``files`` (name -> bytes) with their real sha256 and size."""
    resources = tuple(Resource(name, (), "sha256:" + hashlib.sha256(data).hexdigest(), len(data))
                      for name, data in files.items())
    return dataclasses.replace(base_recipe, resources=resources)


def raw_request(port: int, target: str, method: str = "GET", headers: dict | None = None,
                timeout: float = 10) -> tuple[int, dict, bytes]:
    """Send one HTTP/1.1 request with ``target`` exactly as given; ``(status, headers, body)``."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
             *(f"{k}: {v}" for k, v in (headers or {}).items()), "", ""]
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall("\r\n".join(lines).encode("latin-1"))
        chunks = []
        while block := s.recv(65536):
            chunks.append(block)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    hdrs = {}
    for line in header_lines:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return int(status_line.split()[1]), hdrs, body


class CuttingProxy:
    """A TCP proxy on 127.0.0.1 to ``127.0.0.1:target_port`` that forwards the first ``cuts``
    connections' responses only up to ``cut_after`` bytes (headers included), then closes both
    sides: a network cut in the middle of a body. Later connections pass through untouched."""

    def __init__(self, target_port: int, cut_after: int, cuts: int = 1):
        self.target_port, self.cut_after, self.cuts = target_port, cut_after, cuts
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.lock = threading.Lock()
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self):
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                cut = self.cut_after if self.connections <= self.cuts else None
            threading.Thread(target=self._pipe, args=(client, cut), daemon=True).start()

    def _pipe(self, client, cut):
        upstream = socket.create_connection(("127.0.0.1", self.target_port))

        def forward(src, dst, limit):
            sent = 0
            try:
                while block := src.recv(65536):
                    if limit is not None and sent + len(block) >= limit:
                        dst.sendall(block[:limit - sent])
                        break
                    dst.sendall(block)
                    sent += len(block)
            except OSError:
                pass
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        up = threading.Thread(target=forward, args=(client, upstream, None), daemon=True)
        up.start()
        forward(upstream, client, cut)
        up.join(5)
        client.close()
        upstream.close()

    def close(self):
        self.stopped = True
        self.listener.close()


class OpenRecorder:
    """Records the path of every file opened by this process (``open`` audit events) while active."""

    _installed = False
    _active: list | None = None

    @classmethod
    def _hook(cls, event, args):
        if event == "open" and cls._active is not None and isinstance(args[0], (str, bytes, os.PathLike)):
            cls._active.append(os.fsdecode(args[0]))

    def __enter__(self):
        if not OpenRecorder._installed:
            sys.addaudithook(OpenRecorder._hook)
            OpenRecorder._installed = True
        self.paths = []
        OpenRecorder._active = self.paths
        return self

    def __exit__(self, *exc):
        OpenRecorder._active = None
