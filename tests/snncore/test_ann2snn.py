import copy

import pytest
import torch
from torch import nn

from snncore import ann2snn, layer
from snncore.functional import reset_net
from snncore.neuron import IFNode

# 5 x 7 bitmap digits, rendered at 2x into 16 x 16 images with random shift, contrast and noise:
# an offline image classification task that a small CNN learns to ~90 % in a few seconds.
GLYPHS = [
    [".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."],
    ["..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."],
    [".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"],
    ["#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."],
    ["...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."],
    ["#####", "#....", "####.", "....#", "....#", "#...#", ".###."],
    ["..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."],
    ["#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."],
    [".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."],
    [".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."],
]


def render_digits(n, gen, noise=0.4):
    glyphs = torch.tensor([[[c == "#" for c in row] for row in d] for d in GLYPHS], dtype=torch.float32)
    glyphs = glyphs.repeat_interleave(2, 1).repeat_interleave(2, 2)  # (10, 14, 10)
    y = torch.randint(0, 10, (n,), generator=gen)
    oy = torch.randint(0, 3, (n,), generator=gen)
    ox = torch.randint(0, 7, (n,), generator=gen)
    amp = 0.4 + 0.6 * torch.rand(n, generator=gen)
    x = torch.zeros(n, 1, 16, 16)
    for i in range(n):
        x[i, 0, oy[i]:oy[i] + 14, ox[i]:ox[i] + 10] = glyphs[y[i]] * amp[i]
    return (x + noise * torch.randn(x.shape, generator=gen)).clamp(0, 1), y


def small_cnn():
    return nn.Sequential(
        nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AvgPool2d(2)),
        nn.Sequential(nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.AvgPool2d(2)),
        nn.Flatten(), nn.Dropout(0.1), nn.Linear(256, 10))


@pytest.fixture(scope="module")
def trained():
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    xtr, ytr = render_digits(3000, gen)
    xte, yte = render_digits(2000, gen)
    ann = small_cnn()
    opt = torch.optim.Adam(ann.parameters(), 5e-3)
    for _ in range(4):
        ann.train()
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), 50):
            idx = perm[i:i + 50]
            loss = nn.functional.cross_entropy(ann(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    ann.eval()
    return ann, xtr, xte, yte


def _accuracy(out, y):
    return (out.argmax(1) == y).float().mean().item()


@pytest.mark.parametrize("normalization, percentile", [("robust", None), ("robust", 99.9), ("max", None)])
def test_converted_snn_at_T64_within_one_point_of_the_ann(trained, normalization, percentile):
    ann, xtr, xte, yte = trained
    with torch.no_grad():
        ann_acc = _accuracy(ann(xte), yte)
    assert ann_acc > 0.8  # the ANN learned the task (chance is 0.1)
    before = copy.deepcopy(ann.state_dict())
    snn = ann2snn.convert(ann, xtr[:500], normalization=normalization, percentile=percentile)
    assert all(torch.equal(before[k], v) for k, v in ann.state_dict().items())  # ANN untouched
    assert sum(isinstance(m, IFNode) for m in snn) == 2
    assert all(m.v_reset is None and m.v_threshold == 1.0 for m in snn if isinstance(m, IFNode))
    out = torch.cat([ann2snn.simulate(snn, xte[i:i + 500], 64) for i in range(0, len(xte), 500)])
    snn_acc = _accuracy(out, yte)
    print(f"{normalization} {percentile}: ANN {ann_acc:.4f} SNN(T=64) {snn_acc:.4f}")
    assert abs(snn_acc - ann_acc) <= 0.01, (ann_acc, snn_acc)


def test_multi_step_snn_equals_single_step_snn(trained):
    ann, xtr, xte, _ = trained
    snn_s = ann2snn.convert(ann, xtr[:200])
    snn_m = ann2snn.convert(ann, xtr[:200], step_mode="m")
    a = ann2snn.simulate(snn_s, xte[:50], 16)
    b = ann2snn.simulate(snn_m, xte[:50], 16)
    assert torch.allclose(a, b, atol=1e-5)


def test_fuse_conv_bn_preserves_eval_output():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Identity(),
                          nn.Flatten(), nn.Linear(4 * 4 * 4, 5), nn.BatchNorm1d(5, affine=False))
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            if m.affine:
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-1, 1)
    model.eval()
    fused = ann2snn.fuse_conv_bn(model)
    assert [type(m) for m in fused] == [nn.Conv2d, nn.ReLU, nn.Flatten, nn.Linear]
    x = torch.randn(3, 2, 6, 6)
    with torch.no_grad():
        assert torch.allclose(fused(x), model(x), atol=1e-5)
    conv1d = nn.Sequential(nn.Conv1d(2, 3, 3), nn.BatchNorm1d(3)).eval()
    conv1d[1].running_mean.fill_(0.5)
    with torch.no_grad():
        assert torch.allclose(ann2snn.fuse_conv_bn(conv1d)(x[:, :, 0]), conv1d(x[:, :, 0]), atol=1e-6)


def test_activation_scales_max_and_nearest_rank_percentile():
    lin = nn.Linear(1, 1)
    with torch.no_grad():
        lin.weight.fill_(1.0)
        lin.bias.fill_(0.0)
    model = nn.Sequential(lin, nn.ReLU(), nn.Linear(1, 1))
    x = torch.arange(-50, 101, dtype=torch.float32).view(-1, 1)  # positive activations 1..100
    assert ann2snn.activation_scales(model, x, normalization="max") == [100.0]
    assert ann2snn.activation_scales(model, x, percentile=90.0) == [90.0]  # ceil(0.9 * 100) = 90th value
    assert ann2snn.activation_scales(model, x, percentile=90.5) == [91.0]
    assert ann2snn.activation_scales(model, [(x[:70], None), (x[70:], None)], percentile=50.0, batch_size=7) == [50.0]
    assert ann2snn.activation_scales(model, -x.abs() - 1, normalization="max") == [1.0]  # never fires
    ramp = torch.arange(1.0, 1001.0).view(-1, 1)  # 99.9 / 100 * 1000 is 999.0000000000001 in floats
    assert ann2snn.activation_scales(model, ramp, percentile=99.9) == [999.0]


@pytest.mark.parametrize("mid", [[], [nn.Flatten()]])
def test_weight_layers_in_a_row_are_scaled_once(mid):
    """Of several weight layers in a row only the first takes the previous ReLU's scale; the next
    ones see the first's output in the ANN's units (each was multiplied by λ before the fix)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 6), *mid, nn.Linear(6, 5), nn.ReLU(),
                          nn.Linear(5, 3), nn.Linear(3, 2)).eval()
    x = torch.rand(300, 4)
    snn = ann2snn.convert(model, x, normalization="max")
    lam1, lam2 = snn.activation_scales
    ann_w = [m for m in model if isinstance(m, nn.Linear)]
    snn_w = [m for m in snn if isinstance(m, nn.Linear)]
    ratios = [float((s.weight / a.weight).detach().mean()) for s, a in zip(snn_w, ann_w)]
    assert ratios == pytest.approx([1 / lam1, lam1, 1 / lam2, lam2, 1.0], rel=1e-5)
    assert torch.allclose(snn_w[2].bias, ann_w[2].bias / lam2) and torch.equal(snn_w[1].bias, ann_w[1].bias)
    with torch.no_grad():
        out, ref = ann2snn.simulate(snn, x, 256), model(x)
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()


def test_rescaled_if_rates_follow_relu_over_lambda():
    # one hidden layer: IF rate after T steps ~ clip(relu(a) / lambda, 0, 1) within 1/T
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 20), nn.ReLU(), nn.Linear(20, 2))
    x = torch.rand(64, 3)
    snn = ann2snn.convert(model, x, normalization="max")
    (lam,) = snn.activation_scales
    with torch.no_grad():
        a = model[1](model[0](x))
        snn_hidden = nn.Sequential(snn[0], snn[1])
        reset_net(snn_hidden)
        T = 200
        rate = sum(snn_hidden(x) for _ in range(T)) / T
    assert torch.allclose(rate, (a / lam).clamp(0, 1), atol=1.0 / T + 1e-6)
    with torch.no_grad():
        out = ann2snn.simulate(snn, x, T)
    assert torch.allclose(out, model(x), atol=0.1 * model(x).abs().max().item())


@pytest.mark.parametrize("model, match", [
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2)), "AvgPool2d instead"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.BatchNorm2d(2)), "directly follow"),
    (nn.Sequential(nn.Linear(2, 2), nn.Sigmoid()), "cannot convert Sigmoid"),
    (nn.Sequential(nn.ReLU(), nn.Linear(2, 2)), "before the first"),
])
def test_unsupported_models_raise_clear_errors(model, match):
    with pytest.raises(ValueError, match=match):
        ann2snn.convert(model, torch.rand(4, 1, 6, 6) if isinstance(model[0], nn.Conv2d) else torch.rand(4, 2))


def test_argument_errors():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    with pytest.raises(TypeError, match="nn.Sequential"):
        ann2snn.convert(nn.Linear(2, 2), torch.rand(2, 2))
    with pytest.raises(ValueError, match="percentile only applies"):
        ann2snn.convert(model, torch.rand(2, 2), normalization="max", percentile=99.0)
    with pytest.raises(ValueError, match="normalization"):
        ann2snn.convert(model, torch.rand(2, 2), normalization="l2")
    with pytest.raises(ValueError, match="percentile"):
        ann2snn.convert(model, torch.rand(2, 2), percentile=0)
    with pytest.raises(ValueError, match="at least one sample"):
        ann2snn.convert(model, torch.rand(0, 2))
    with pytest.raises(ValueError, match="T must"):
        ann2snn.simulate(model, torch.rand(2, 2), 0)
    snn = ann2snn.convert(model, torch.rand(3, 2))
    snn[0].step_mode = "m"
    with pytest.raises(ValueError, match="mixes step modes"):
        ann2snn.simulate(snn, torch.rand(2, 2), 4)
    assert isinstance(snn[0], layer.Linear)
