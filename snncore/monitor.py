"""Record spikes, membrane potentials and firing rates of chosen layers; plot them.

>>> with Monitor(net, types=(IFNode,), record=("spikes", "v", "rate")) as mon:   # doctest: +SKIP
...     net(x_seq)
>>> mon.spikes("2").shape            # (T, N, *) of layer "2"                 # doctest: +SKIP
>>> plot_raster(mon.spikes("2")[:, 0])                                       # doctest: +SKIP

Recording uses forward hooks; leaving the ``with`` block (or ``close()``) removes them and restores
every ``store_v_seq`` flag the monitor switched on. Plots import matplotlib only when called.
"""
from __future__ import annotations

import weakref

import torch
from torch import nn

__all__ = ["Monitor", "plot_raster", "plot_membrane", "plot_firing_rate_map"]

# neuron -> [open monitors recording its v, its store_v_seq before the first of them]
_V_USERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

_RECORDS = ("spikes", "v", "rate")


class Monitor:
    """Record the outputs (spikes), membrane potentials and firing rates of chosen layers of ``net``.

    Parameters
    ----------
    net : nn.Module
    names : sequence of str, keyword-only
        Layers to watch, by their name in ``net.named_modules()``.
    types : type or tuple of types, keyword-only
        Watch every submodule that is an instance of one of them. Exactly one of ``names`` and
        ``types`` must be given.
    record : iterable of {'spikes', 'v', 'rate'}
        ``'spikes'``: keep every output (detached, on ``device``). ``'v'``: keep the membrane
        potential after each step (the layer needs a ``v`` memory; in ``'m'`` mode its ``v_seq``,
        which the monitor turns on through ``store_v_seq`` while it is open). ``'rate'``: keep only
        running sums per neuron (memory-light).
    device : str or torch.device or None
        Where recordings are stored (default ``'cpu'``; None keeps the layer's device).

    Each call of a watched layer adds ``T`` steps: 1 in ``'s'`` mode, ``x_seq.shape[0]`` in ``'m'``.
    :meth:`spikes` and :meth:`v` concatenate the calls along time, ``(T_total, N, *)``: call
    :meth:`clear` between independent batches.
    """

    def __init__(self, net: nn.Module, *, names=None, types=None, record=("spikes", "rate"), device="cpu"):
        if not isinstance(net, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}")
        if (names is None) == (types is None):
            raise TypeError("give exactly one of names=[...] (layer names in net.named_modules()) "
                            "or types=(ModuleClass, ...)")
        record = (record,) if isinstance(record, str) else tuple(record)
        bad = [r for r in record if r not in _RECORDS]
        if bad or not record:
            raise ValueError(f"record must be a non-empty subset of {_RECORDS}, got {record!r}")
        self.record, self.device = record, device
        self.layers = self._select(net, names, types)
        self._hooks, self._restore = [], []
        self.clear()
        for name, m in self.layers.items():
            if "v" in record:
                if not hasattr(m, "v"):
                    raise ValueError(f"layer {name!r} ({type(m).__name__}) has no membrane potential 'v'; "
                                     "record 'v' only from neuron layers")
                if hasattr(m, "store_v_seq"):  # on while any monitor recording v is open
                    users = _V_USERS.setdefault(m, [0, m.store_v_seq])
                    users[0] += 1
                    self._restore.append(m)
                    m.store_v_seq = True
            self._hooks.append(m.register_forward_hook(self._hook(name)))

    @staticmethod
    def _select(net, names, types) -> dict:
        modules = dict(net.named_modules())
        if names is not None:
            names = [names] if isinstance(names, str) else list(names)
            missing = [n for n in names if n not in modules]
            if missing:
                raise ValueError(f"no layer named {missing} in net; available: {sorted(k for k in modules if k)}")
            return {n: modules[n] for n in names}
        types = types if isinstance(types, tuple) else (types,)
        if not all(isinstance(t, type) for t in types):
            raise TypeError(f"types must be a class or a tuple of classes, got {types!r}")
        found = {n: m for n, m in modules.items() if isinstance(m, types)}
        if not found:
            raise ValueError(f"net has no submodule of type {[t.__name__ for t in types]}")
        return found

    def _store(self, t: torch.Tensor) -> torch.Tensor:
        t = t.detach()
        return t.to(self.device, copy=True) if self.device is not None else t.clone()

    def _hook(self, name):
        def hook(module, inputs, output):
            multi = getattr(module, "step_mode", "s") == "m"
            seq = output if multi else output.unsqueeze(0)
            if "spikes" in self.record:
                self._spikes[name].append(self._store(seq))
            if "rate" in self.record:
                s = seq.detach().flatten(0, 1).double().sum(0)
                if name in self._rate_sum and self._rate_sum[name].shape != s.shape:
                    raise RuntimeError(f"layer {name!r}: neuron shape changed from {tuple(self._rate_sum[name].shape)} "
                                       f"to {tuple(s.shape)}; call monitor.clear() between different inputs")
                self._rate_sum[name] = self._rate_sum.get(name, 0) + s
                self._rate_count[name] = self._rate_count.get(name, 0) + seq.shape[0] * seq.shape[1]
            if "v" in self.record:
                v = getattr(module, "v_seq", None) if multi else module.v
                if not isinstance(v, torch.Tensor):
                    raise RuntimeError(f"layer {name!r} exposes no membrane potential tensor after its forward "
                                       f"({'v_seq' if multi else 'v'})")
                self._v[name].append(self._store(v if multi else v.unsqueeze(0)))
        return hook

    # -- access ----------------------------------------------------------------------------------
    @property
    def names(self) -> list:
        return list(self.layers)

    def _cat(self, store, name, what):
        if what not in self.record:
            raise ValueError(f"this monitor does not record {what!r}; create it with record=(..., {what!r})")
        if name not in self.layers:
            raise KeyError(f"layer {name!r} is not monitored; monitored: {self.names}")
        if not store[name]:
            raise ValueError(f"layer {name!r} has not run since the monitor was opened or cleared")
        return torch.cat(store[name])

    def spikes(self, name: str) -> torch.Tensor:
        """Outputs of layer ``name``, shape (T_total, N, *), in recording order."""
        return self._cat(self._spikes, name, "spikes")

    def v(self, name: str) -> torch.Tensor:
        """Membrane potential of layer ``name`` after each step, shape (T_total, N, *)."""
        return self._cat(self._v, name, "v")

    def firing_rate(self, name: str) -> torch.Tensor:
        """Mean output per neuron over all recorded steps and samples, shape (*) (float64)."""
        if "rate" not in self.record:
            raise ValueError("this monitor does not record 'rate'; create it with record=(..., 'rate')")
        if name not in self._rate_sum:
            raise ValueError(f"layer {name!r} has not run since the monitor was opened or cleared")
        return (self._rate_sum[name] / self._rate_count[name]).cpu()

    def mean_firing_rates(self) -> dict:
        """``{name: mean firing rate over all neurons, steps and samples}`` of the layers that ran."""
        return {n: float(self.firing_rate(n).mean()) for n in self.layers if n in self._rate_sum}

    def clear(self) -> None:
        """Drop everything recorded so far (the hooks stay)."""
        self._spikes = {n: [] for n in self.layers}
        self._v = {n: [] for n in self.layers}
        self._rate_sum, self._rate_count = {}, {}

    def close(self) -> None:
        """Remove the hooks and restore ``store_v_seq``; the recordings stay readable."""
        for h in self._hooks:
            h.remove()
        self._hooks = []
        for m in self._restore:
            users = _V_USERS[m]
            users[0] -= 1
            if users[0] == 0:  # the last open monitor of m: back to the setting before the first
                m.store_v_seq = users[1]
                del _V_USERS[m]
        self._restore = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# -------------------------------------------------------------------------------------------------
# plots (matplotlib imported lazily: the ``viz`` extra)

def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError("snncore plots need matplotlib, which is not installed; install the 'viz' extra: "
                          "pip install 'neurodata[viz]'") from e
    return plt


def _axes(ax):
    if ax is None:
        _, ax = _pyplot().subplots()
    else:
        _pyplot()
    return ax


def _as_2d_time(x, name) -> torch.Tensor:
    x = torch.as_tensor(x).detach().cpu()
    if x.ndim < 1:
        raise ValueError(f"{name} must have shape (T, *neurons), got a scalar")
    return x.reshape(x.shape[0], -1) if x.ndim != 1 else x.unsqueeze(1)


def plot_raster(spikes, *, ax=None, marker_size: float = 4.0):
    """Raster plot of one sample's spikes ``(T, *neurons)``: a dot at (t, neuron) for each non-zero.

    Neurons are numbered in row-major (flattened) order. Returns the matplotlib Axes.
    """
    s = _as_2d_time(spikes, "spikes")
    ax = _axes(ax)
    t, n = (s != 0).nonzero(as_tuple=True)
    ax.scatter(t.numpy(), n.numpy(), s=marker_size, marker="|", c="k")
    ax.set_xlim(-0.5, s.shape[0] - 0.5)
    ax.set_ylim(-0.5, s.shape[1] - 0.5)
    ax.set_xlabel("time step t")
    ax.set_ylabel("neuron")
    return ax


def plot_membrane(v, *, ax=None, neurons=None, v_threshold: float | None = None):
    """Membrane-potential traces of one sample ``v`` (T, *neurons); ``neurons``: indices into the
    flattened neuron axis (default the first 8). A dashed line marks ``v_threshold`` when given."""
    x = _as_2d_time(v, "v")
    idx = list(range(min(8, x.shape[1]))) if neurons is None else list(neurons)
    ax = _axes(ax)
    for i in idx:
        ax.plot(range(x.shape[0]), x[:, i].numpy(), label=f"neuron {i}")
    if v_threshold is not None:
        ax.axhline(v_threshold, ls="--", c="gray", lw=1, label="V_th")
    ax.set_xlabel("time step t")
    ax.set_ylabel("membrane potential v")
    ax.legend(fontsize="small")
    return ax


def plot_firing_rate_map(rates, *, ax=None, cmap: str = "viridis"):
    """Heat map of firing rates: shape (H, W), or (K,) shown as one row. Returns the Axes."""
    r = torch.as_tensor(rates).detach().cpu().double()
    if r.ndim == 1:
        r = r.unsqueeze(0)
    if r.ndim != 2:
        raise ValueError(f"rates must have shape (H, W) or (K,), got {tuple(r.shape)}; select one sample/channel")
    ax = _axes(ax)
    im = ax.imshow(r.numpy(), cmap=cmap, aspect="auto", interpolation="nearest")
    ax.figure.colorbar(im, ax=ax, label="firing rate")
    return ax
