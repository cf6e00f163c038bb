"""A synthetic DVS128-Gesture-sized archive for ``bench_datasets.py``: real layout, structured events.

``write_gesture_archive(folder, n_recordings, rng)`` writes ``folder/DvsGesture/`` (the extracted
layout SpikingJelly starts from) and ``folder/DvsGesture.tar.gz`` (the download), with
``userXX_<lighting>.aedat`` (AEDAT 3.1 written by ``neurodata.write(..., "aedat31")``),
``userXX_<lighting>_labels.csv`` and ``trials_to_train.txt`` / ``trials_to_test.txt``.

Each recording (≈ 1.3 M events, ≈ 80 s) holds 11 gesture windows of 5–7 s separated by 0.5–2 s
pauses, in the real files' clock (starting a few seconds after 0). Inside a window one or two
"hands" (discs of radius 6–10 px) move along the class's trajectory (circles clockwise or
counter-clockwise, horizontal or vertical waves, figure-eights, ...); an event lies on a disc's
edge (radius ± 1.5 px Gaussian) and is ON on the leading edge, OFF on the trailing one (10 %
flipped). 85 % of the edge crossings fall in windows, 10 % in the pauses (slow drift of one
hand), 5 % are uniform background noise. As a DVS does, each crossing fires a burst of
1 + Poisson(0.8) events of the same pixel and polarity ≈ 60 µs apart (exponential gaps), and the
readout is row by row: within each 200 µs slot, events are ordered by (y, x) and the events of one
row share that row's earliest timestamp. Timestamps are sorted (non-decreasing).
"""
from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np

SENSOR = (128, 128, 2)
LIGHTINGS = ("fluorescent", "fluorescent_led", "lab", "led", "natural")
EVENTS_PER_RECORDING = 1_300_000
BURST = 1.8          # mean events per edge crossing
READOUT_US = 200     # arbiter slot: the events of one row in one slot share a timestamp


def _trajectory(cls: int, tt: np.ndarray, params) -> tuple[np.ndarray, np.ndarray]:
    """Centre (cx, cy) in px of a hand at times ``tt`` (s from the window start) for class ``cls``;
    ``params`` = (angular frequency, amplitude px, centre x, centre y)."""
    w, a, cx0, cy0 = params
    kind = cls % 6
    if kind == 0:    # clockwise circle
        return cx0 + a * np.cos(w * tt), cy0 + a * np.sin(w * tt)
    if kind == 1:    # counter-clockwise circle
        return cx0 + a * np.cos(-w * tt), cy0 + a * np.sin(-w * tt)
    if kind == 2:    # horizontal wave
        return cx0 + a * np.sin(w * tt), cy0 + 4 * np.sin(2 * w * tt)
    if kind == 3:    # vertical wave
        return cx0 + 4 * np.sin(2 * w * tt), cy0 + a * np.sin(w * tt)
    if kind == 4:    # figure eight
        return cx0 + a * np.sin(w * tt), cy0 + 0.5 * a * np.sin(2 * w * tt)
    return cx0 + 0.5 * a * np.sin(3 * w * tt), cy0 + a * np.cos(w * tt)  # drumming-like


def _disc_edge_events(t_us, cx, cy, vx, vy, radius, rng):
    """x, y, p of events on a moving disc's edge (ON where the edge advances)."""
    n = t_us.shape[0]
    theta = rng.uniform(0, 2 * np.pi, n)
    r = radius + rng.normal(0, 1.5, n)
    x = np.rint(cx + r * np.cos(theta))
    y = np.rint(cy + r * np.sin(theta))
    p = (np.cos(theta) * vx + np.sin(theta) * vy) > 0
    p ^= rng.random(n) < 0.1
    return x, y, p


def recording(rng, n_events: int = EVENTS_PER_RECORDING):
    """``(events (EVENT_DTYPE, sorted by t), label rows [(class, start_us, end_us)])`` of one recording."""
    from neurodata.events import make_events

    n_events = int(n_events * rng.uniform(0.9, 1.1) / BURST)
    classes = rng.permutation(np.arange(1, 12))
    t = int(rng.uniform(1e6, 4e6))
    rows = []
    for c in classes:
        d = int(rng.uniform(5e6, 7e6))
        rows.append((int(c), t, t + d))
        t += d + int(rng.uniform(0.5e6, 2e6))
    t_end = t
    n_win = int(0.85 * n_events)
    n_pause = int(0.10 * n_events)
    n_noise = n_events - n_win - n_pause
    parts_t, parts_x, parts_y, parts_p = [], [], [], []
    lengths = np.array([b - a for _, a, b in rows], float)
    per_window = rng.multinomial(n_win, lengths / lengths.sum())
    for (c, a, b), n in zip(rows, per_window):
        hands = 2 if c in (2, 3, 8, 9, 10) else 1
        for h, m in enumerate(np.array_split(np.arange(n), hands)):
            tt = rng.integers(a, b, m.shape[0])
            s = (tt - a) / 1e6
            params = (2 * np.pi * rng.uniform(0.6, 1.2), rng.uniform(18, 32), *rng.uniform(48, 80, 2))
            cx, cy = _trajectory(int(c) + h, s, params)
            cx2, cy2 = _trajectory(int(c) + h, s + 1e-3, params)
            x, y, p = _disc_edge_events(tt, cx, cy, cx2 - cx, cy2 - cy, rng.uniform(6, 10), rng)
            parts_t.append(tt); parts_x.append(x); parts_y.append(y); parts_p.append(p)
    # pauses: one hand drifting slowly
    tt = rng.integers(0, t_end, n_pause)
    s = tt / 1e6
    cx, cy = 64 + 20 * np.sin(0.3 * s), 90 + 5 * np.cos(0.2 * s)
    x, y, p = _disc_edge_events(tt, cx, cy, np.cos(0.3 * s), -np.sin(0.2 * s), 8.0, rng)
    parts_t.append(tt); parts_x.append(x); parts_y.append(y); parts_p.append(p)
    # background noise
    parts_t.append(rng.integers(0, t_end, n_noise))
    parts_x.append(rng.integers(0, 128, n_noise).astype(float))
    parts_y.append(rng.integers(0, 128, n_noise).astype(float))
    parts_p.append(rng.random(n_noise) < 0.5)
    t_all = np.concatenate(parts_t)
    x_all, y_all, p_all = (np.concatenate(v) for v in (parts_x, parts_y, parts_p))
    keep = (x_all >= 0) & (x_all < 128) & (y_all >= 0) & (y_all < 128)
    t_all, x_all, y_all, p_all = t_all[keep], x_all[keep], y_all[keep], p_all[keep]
    # bursts: a pixel crossed by an edge fires 1 + Poisson(BURST - 1) events, ≈ 60 µs apart
    k = 1 + rng.poisson(BURST - 1, t_all.shape[0])
    idx = np.repeat(np.arange(t_all.shape[0]), k)
    first = np.repeat(np.cumsum(k) - k, k)
    gap = rng.exponential(60.0, idx.shape[0])
    gap[first == np.arange(idx.shape[0])] = 0
    csum = np.cumsum(gap)
    t_all = t_all[idx] + np.rint(csum - csum[first]).astype(np.int64)
    x_all, y_all, p_all = x_all[idx], y_all[idx], p_all[idx]
    # arbiter readout: within a READOUT_US slot, rows are read in order and share one timestamp
    slot = t_all // READOUT_US
    order = np.lexsort((x_all, y_all, slot))
    t_all, x_all, y_all, p_all, slot = t_all[order], x_all[order], y_all[order], p_all[order], slot[order]
    group = np.r_[True, (slot[1:] != slot[:-1]) | (y_all[1:] != y_all[:-1])]
    starts = np.flatnonzero(group)
    t_all = np.repeat(np.minimum.reduceat(t_all, starts), np.diff(np.r_[starts, t_all.shape[0]]))
    order = np.argsort(t_all, kind="stable")
    ev = make_events(t_all[order], x_all[order].astype(np.uint16), y_all[order].astype(np.uint16),
                     p_all[order].astype(np.uint8))
    return ev, rows


def write_gesture_archive(folder, n_recordings: int, rng, n_test: int | None = None,
                          events_per_recording: int = EVENTS_PER_RECORDING) -> dict:
    """Write ``folder/DvsGesture/...`` and ``folder/DvsGesture.tar.gz`` (gzip level 6, as ``tar czf``)
    and an uncompressed ``folder/plain/DvsGesture.tar.gz`` (the same tar without gzip, for timing
    without decompression). Returns ``{"events": total, "recordings": n, "sha256": {...}}``.

    ``n_test`` recordings (default: the real 24/122 share) go to ``trials_to_test.txt``.
    """
    import neurodata
    from neurodata.download import file_digest

    folder = Path(folder)
    root = folder / "DvsGesture"
    root.mkdir(parents=True)
    rng = np.random.default_rng(rng)
    n_test = max(1, round(n_recordings * 24 / 122)) if n_test is None else n_test
    names = [f"user{1 + k // len(LIGHTINGS):02d}_{LIGHTINGS[k % len(LIGHTINGS)]}" for k in range(n_recordings)]
    total = 0
    windows = 0
    for name in names:
        ev, rows = recording(rng, events_per_recording)
        total += ev.shape[0]
        windows += len(rows)
        neurodata.write(root / f"{name}.aedat", ev, "aedat31", sensor_size=SENSOR)
        csv = "class,startTime_usec,endTime_usec\r\n" + "".join(f"{c},{a},{b}\r\n" for c, a, b in rows)
        (root / f"{name}_labels.csv").write_text(csv, newline="")
    split = n_recordings - n_test
    (root / "trials_to_train.txt").write_text("".join(f"{n}.aedat\n" for n in names[:split]))
    (root / "trials_to_test.txt").write_text("".join(f"{n}.aedat\n" for n in names[split:]))
    members = sorted(p.name for p in root.iterdir())
    (folder / "plain").mkdir()
    archives = {"gz": folder / "DvsGesture.tar.gz", "plain": folder / "plain" / "DvsGesture.tar.gz"}
    for kind, path in archives.items():
        opts = {"compresslevel": 6} if kind == "gz" else {}
        with tarfile.open(path, "w:gz" if kind == "gz" else "w", **opts) as tf:
            tf.add(root, arcname="DvsGesture", recursive=False)
            for m in members:
                tf.add(root / m, arcname=f"DvsGesture/{m}")
    return {"events": total, "recordings": n_recordings, "windows": windows, "train": split, "test": n_test,
            "sha256": {k: "sha256:" + file_digest(p, "sha256") for k, p in archives.items()},
            "archives": archives, "extracted": root}

