import copy
import pickle

import pytest
import torch

from snncore.base import MemoryModule, StepModule
from snncore.neuron import LIFNode


class Counter(MemoryModule):
    def __init__(self):
        super().__init__("s")
        self.register_memory("v", 0.0)

    def forward(self, x):
        self.v = self.v + x
        return self.v


def test_memories_reset_detach_copy_and_pickle():
    m = Counter()
    x = torch.ones(3, requires_grad=True)
    m(x)
    m(x)
    assert m.v.requires_grad and torch.equal(m.v, torch.full((3,), 2.0))
    clone = copy.deepcopy(m)                          # works although v is part of a graph
    assert torch.equal(clone.v, m.v) and not clone.v.requires_grad
    m.detach()
    assert not m.v.requires_grad
    restored = pickle.loads(pickle.dumps(m))
    assert torch.equal(restored.v, m.v)
    m.reset()
    assert m.v == 0.0 and dict(m.memories()) == {"v": 0.0}


def test_step_mode_is_validated():
    with pytest.raises(ValueError, match="step_mode"):
        StepModule("x")
    node = LIFNode(step_mode="m")
    with pytest.raises(ValueError):
        node.step_mode = "multi"


def test_deepcopy_of_a_neuron_mid_sequence():
    node = LIFNode(tau=2, step_mode="m")
    x = torch.rand(4, 2, 3, requires_grad=True)
    node(x)
    twin = copy.deepcopy(node)
    assert torch.equal(twin.v, node.v.detach())
