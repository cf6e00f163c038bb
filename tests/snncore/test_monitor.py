import builtins
import sys

import pytest
import torch
from torch import nn

from snncore import layer
from snncore.base import MemoryModule
from snncore.functional import reset_net, set_step_mode
from snncore.monitor import Monitor, plot_firing_rate_map, plot_membrane, plot_raster


class TinyIF(MemoryModule):
    """Minimal IF neuron (hard reset to 0, threshold 1) with the neuron-layer attributes a monitor
    reads: ``v`` memory, ``store_v_seq`` and ``v_seq`` in 'm' mode."""

    def __init__(self, step_mode="s", store_v_seq=False):
        super().__init__(step_mode)
        self.store_v_seq = store_v_seq
        self.register_memory("v", 0.0)

    def _step(self, x):
        v = self.v + x
        s = (v >= 1.0).to(x.dtype)
        self.v = v * (1 - s)
        return s, v

    def forward(self, x):
        if self.step_mode == "s":
            return self._step(x)[0]
        out, vs = [], []
        for t in range(x.shape[0]):
            s, _ = self._step(x[t])
            out.append(s)
            vs.append(self.v)
        if self.store_v_seq:
            self.v_seq = torch.stack(vs)
        return torch.stack(out)


def _net():
    torch.manual_seed(0)
    return nn.Sequential(layer.Linear(4, 6), TinyIF(), layer.Linear(6, 3), TinyIF())


def test_records_spikes_v_and_rates_same_in_both_step_modes():
    x = torch.rand(5, 2, 4) * 2
    net = _net()
    with Monitor(net, types=TinyIF, record=("spikes", "v", "rate")) as mon:
        for t in range(5):
            net(x[t])
    assert mon.names == ["1", "3"]
    s_single, v_single = mon.spikes("1"), mon.v("1")
    assert s_single.shape == (5, 2, 6) and v_single.shape == (5, 2, 6)
    assert torch.allclose(mon.firing_rate("1").float(), s_single.mean((0, 1)))
    rates = mon.mean_firing_rates()
    assert set(rates) == {"1", "3"} and abs(rates["1"] - s_single.double().mean().item()) < 1e-12
    # hooks are gone after the with block
    net(x[0])
    assert mon.spikes("1").shape[0] == 5

    reset_net(net)
    set_step_mode(net, "m")
    assert net[1].store_v_seq is False
    with Monitor(net, names=["1"], record=("spikes", "v")) as mon2:
        assert net[1].store_v_seq is True  # switched on while monitoring
        net(x)
    assert net[1].store_v_seq is False  # restored
    assert torch.equal(mon2.spikes("1"), s_single)
    assert torch.allclose(mon2.v("1"), v_single)


def test_recorded_v_matches_neuron_state_and_is_a_copy():
    net = _net()
    with Monitor(net, names=["1"], record="v") as mon:
        net(torch.full((1, 4), 0.3))
        v0 = net[1].v.clone()
        net(torch.full((1, 4), 0.3))
    assert torch.equal(mon.v("1")[0], v0)


def test_clear_and_errors():
    net = _net()
    mon = Monitor(net, names=["1"], record=("spikes",))
    net(torch.rand(2, 4))
    mon.clear()
    with pytest.raises(ValueError, match="has not run"):
        mon.spikes("1")
    with pytest.raises(ValueError, match="does not record 'v'"):
        mon.v("1")
    with pytest.raises(ValueError, match="does not record 'rate'"):
        mon.firing_rate("1")
    with pytest.raises(KeyError, match="not monitored"):
        mon.spikes("3")
    mon.close()
    with pytest.raises(TypeError, match="exactly one"):
        Monitor(net)
    with pytest.raises(TypeError, match="exactly one"):
        Monitor(net, names=["1"], types=TinyIF)
    with pytest.raises(ValueError, match="no layer named"):
        Monitor(net, names=["nope"])
    with pytest.raises(ValueError, match="no membrane potential"):
        Monitor(net, names=["0"], record="v")
    with pytest.raises(ValueError, match="record"):
        Monitor(net, names=["1"], record=("spike",))
    with pytest.raises(ValueError, match="no submodule"):
        Monitor(net, types=nn.Conv2d)


def test_rate_accumulates_over_calls_and_shape_change_asks_for_clear():
    net = _net()
    a, b = torch.rand(2, 4), torch.rand(3, 2, 4)
    with Monitor(net, names=["0"], record="rate") as mon:
        ya = net[0](a)
        net[0].step_mode = "m"
        yb = net[0](b)  # 6 more step-samples, same neuron shape
        expect = torch.cat([ya, yb.flatten(0, 1)]).double().mean(0)
        assert torch.allclose(mon.firing_rate("0"), expect.detach())
        with pytest.raises(RuntimeError, match="clear"):
            net[0](torch.rand(3, 2, 2, 4))


def test_plots_draw_on_given_axes():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    spikes = (torch.rand(20, 2, 3) < 0.3).float()
    ax = Figure().add_subplot()
    assert plot_raster(spikes, ax=ax) is ax
    pts = ax.collections[0].get_offsets()
    assert len(pts) == int(spikes.sum())
    ax = plot_membrane(torch.randn(20, 5), ax=Figure().add_subplot(), neurons=[0, 2], v_threshold=1.0)
    assert len(ax.lines) == 3
    ax = plot_firing_rate_map(torch.rand(4, 6), ax=Figure().add_subplot())
    assert ax.images[0].get_array().shape == (4, 6)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        plot_firing_rate_map(torch.rand(2, 4, 6), ax=Figure().add_subplot())


def test_plots_without_matplotlib_name_the_viz_extra(monkeypatch):
    for mod in list(sys.modules):
        if mod == "matplotlib" or mod.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, mod)
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"neurodata\[viz\]"):
        plot_raster(torch.zeros(3, 2))


def test_monitor_on_snncore_if_neurons_in_both_modes():
    from snncore.neuron import IFNode

    torch.manual_seed(0)
    net = nn.Sequential(layer.Linear(4, 6), IFNode(), layer.Linear(6, 3), IFNode(v_reset=None))
    x = torch.rand(7, 2, 4) * 1.5
    with Monitor(net, types=IFNode, record=("spikes", "v", "rate")) as mon_s:
        out_s = torch.stack([net(x[t]) for t in range(7)])
    reset_net(net)
    set_step_mode(net, "m")
    with Monitor(net, types=IFNode, record=("spikes", "v", "rate")) as mon_m:
        out_m = net(x)
    assert torch.equal(out_m, out_s)
    assert not net[1].store_v_seq
    for name in ("1", "3"):
        assert torch.equal(mon_m.spikes(name), mon_s.spikes(name))
        assert torch.allclose(mon_m.v(name), mon_s.v(name), atol=1e-6)
        assert torch.allclose(mon_m.firing_rate(name), mon_s.firing_rate(name))
    assert torch.equal(mon_s.spikes("3"), out_s)


def test_nested_monitors_keep_v_seq_on_until_the_last_closes():
    """Two monitors recording v of one 'm' neuron: closing the first used to switch store_v_seq
    off, so the second silently recorded the previous call's v_seq again."""
    net = _net()
    set_step_mode(net, "m")
    x1, x2 = torch.rand(5, 2, 4) * 2, torch.rand(5, 2, 4) * 2
    first = Monitor(net, names=["1"], record=("v",))
    second = Monitor(net, names=["1"], record=("v",))
    net(x1)
    first.close()
    assert net[1].store_v_seq
    net(x2)
    assert torch.equal(second.v("1")[5:], net[1].v_seq)
    second.close()
    assert not net[1].store_v_seq  # back to its setting before the first monitor
    kept = TinyIF(step_mode="m", store_v_seq=True)
    with Monitor(nn.Sequential(kept), names=["0"], record=("v",)):
        pass
    assert kept.store_v_seq  # a neuron that stored v_seq itself keeps doing so
