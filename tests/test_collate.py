"""neurodata.collate against what the batch must hold, sample by sample."""
import numpy as np
import pytest
import torch

from neurodata.collate import concat_events, pad_frames, sparse_frames
from tests.helpers import random_events


def _frames_batch(lengths, shape=(2, 3, 4), dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.integers(0, 4, (T, *shape)).astype(dtype), i % 3) for i, T in enumerate(lengths)]


@pytest.mark.parametrize("lengths", [[3, 1, 0, 5], [2], [0, 0]])
def test_pad_frames_and_sparse_frames_hold_every_sample(lengths):
    batch = _frames_batch(lengths)
    frames, labels, lens, mask = pad_frames(batch)
    T = max(lengths)
    assert frames.shape == (len(lengths), T, 2, 3, 4) and frames.dtype == torch.uint8
    assert lens.tolist() == lengths and labels.tolist() == [lbl for _, lbl in batch]
    for i, (f, _) in enumerate(batch):
        assert np.array_equal(frames[i, : len(f)].numpy(), f) and not frames[i, len(f):].any()
        assert mask[i].tolist() == [k < len(f) for k in range(T)]
    sparse, sparse_labels = sparse_frames(batch)
    assert sparse.shape == frames.shape and torch.equal(sparse.to_dense(), frames)
    assert torch.equal(sparse_labels, labels)


def test_frames_of_other_sizes_are_refused_and_dtypes_promoted():
    """A (P, H, W) that differs was broadcast into the first sample's (a 1-channel sample counted
    twice) or, for sparse_frames, gave indices outside the tensor's shape; a float sample after a
    uint8 one was cast to uint8 (300.5 became 44)."""
    mixed = [(np.ones((3, 2, 4, 5), np.uint8), 0), (np.ones((2, 1, 4, 5), np.uint8), 1)]
    for collate in (pad_frames, sparse_frames):
        with pytest.raises(ValueError, match=r"same \(P, H, W\)"):
            collate(mixed)
    promoted = [(np.zeros((1, 1, 1, 2), np.uint8), 0), (np.full((1, 1, 1, 2), 300.5, np.float32), 1)]
    frames = pad_frames(promoted)[0]
    assert frames.dtype == torch.float32 and frames[1].flatten().tolist() == [300.5, 300.5]
    for dtype in (torch.bfloat16, torch.int16):  # numpy lacks bfloat16: torch allocates that one
        out = pad_frames([(torch.ones(2, 1, 1, 2, dtype=dtype), 0), (torch.ones(1, 1, 1, 2, dtype=dtype), 1)])[0]
        assert out.dtype == dtype and out.sum().item() == 6 and out[1, 1].abs().sum().item() == 0
    sparse = sparse_frames(promoted)[0]
    with torch.sparse.check_sparse_tensor_invariants():
        assert torch.equal(torch.sparse_coo_tensor(sparse.indices(), sparse.values(), sparse.shape).to_dense(),
                           frames)


def test_concat_events_offsets_and_batch_index():
    samples = [(random_events(n, (16, 8, 2), seed=n), n % 2) for n in (5, 0, 12)]
    tonic_like = np.zeros(2, [("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
    tonic_like["t"], tonic_like["x"], tonic_like["p"] = [3, 4], [1, 2], [-1, 1]
    mixed = concat_events([samples[0], (tonic_like, 1)])  # foreign dtypes converted, not byte-joined
    assert mixed["t"][5:].tolist() == [3, 4] and mixed["x"][5:].tolist() == [1, 2] and mixed["p"][5:].tolist() == [0, 1]
    out = concat_events(samples)
    assert out["offsets"].tolist() == [0, 5, 5, 17] and out["labels"].tolist() == [1, 0, 0]
    assert out["batch"].tolist() == [0] * 5 + [2] * 12
    for b, (ev, _) in enumerate(samples):
        a, z = out["offsets"][b], out["offsets"][b + 1]
        for k in "txyp":
            assert out[k].dtype == torch.int64 and np.array_equal(out[k][a:z].numpy(), ev[k].astype(np.int64))


@pytest.mark.parametrize("collate", [pad_frames, sparse_frames])
def test_collates_through_dataloader_workers(collate):
    batch = _frames_batch([2, 3, 1, 4])
    loader = torch.utils.data.DataLoader(batch, batch_size=4, num_workers=2, collate_fn=collate)
    (got, *_), = list(loader)
    expected = pad_frames(batch)[0]
    assert torch.equal(got.to_dense() if got.is_sparse else got, expected)
