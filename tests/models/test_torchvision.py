"""Tests of the torchvision ResNet-18 converter against torch.nn.functional."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sosjax.models import load_torchvision_resnet18
from sosjax.models.resnet import _batch_norm, _conv

torch = pytest.importorskip("torch")
F = torch.nn.functional


def torchvision_state_dict(width=8, in_channels=3, num_classes=5, stem_kernel=7, seed=0):
    """A random state_dict with torchvision ResNet-18 names and shapes at stage widths width·(1, 2, 4, 8)."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}

    def conv(name, c_out, c_in, k):
        sd[f"{name}.weight"] = torch.randn(c_out, c_in, k, k, generator=gen) * (2.0 / (k * k * c_out)) ** 0.5

    def bn(name, c):
        sd[f"{name}.weight"] = 0.5 + torch.rand(c, generator=gen)
        sd[f"{name}.bias"] = 0.2 * torch.randn(c, generator=gen)
        sd[f"{name}.running_mean"] = 0.2 * torch.randn(c, generator=gen)
        sd[f"{name}.running_var"] = 0.5 + torch.rand(c, generator=gen)
        sd[f"{name}.num_batches_tracked"] = torch.tensor(7)

    widths = [width, 2 * width, 4 * width, 8 * width]
    conv("conv1", widths[0], in_channels, stem_kernel)
    bn("bn1", widths[0])
    c_in = widths[0]
    for s, c in enumerate(widths, start=1):
        for b in range(2):
            conv(f"layer{s}.{b}.conv1", c, c_in if b == 0 else c, 3)
            bn(f"layer{s}.{b}.bn1", c)
            conv(f"layer{s}.{b}.conv2", c, c, 3)
            bn(f"layer{s}.{b}.bn2", c)
            if b == 0 and s > 1:
                conv(f"layer{s}.{b}.downsample.0", c, c_in, 1)
                bn(f"layer{s}.{b}.downsample.1", c)
        c_in = c
    sd["fc.weight"] = 0.1 * torch.randn(num_classes, widths[3], generator=gen)
    sd["fc.bias"] = 0.1 * torch.randn(num_classes, generator=gen)
    return sd


def torch_resnet18_forward(sd, x, stem_kernel):
    """Inference forward pass of torchvision's ResNet-18 written with torch.nn.functional."""

    def bn(name, y):
        return F.batch_norm(
            y, sd[f"{name}.running_mean"], sd[f"{name}.running_var"], sd[f"{name}.weight"], sd[f"{name}.bias"], False, 0.0, 1e-5
        )

    if stem_kernel == 7:
        y = F.relu(bn("bn1", F.conv2d(x, sd["conv1.weight"], stride=2, padding=3)))
        y = F.max_pool2d(y, 3, stride=2, padding=1)
    else:
        y = F.relu(bn("bn1", F.conv2d(x, sd["conv1.weight"], stride=1, padding=1)))
    for s in range(1, 5):
        for b in range(2):
            p = f"layer{s}.{b}"
            stride = 2 if (b == 0 and s > 1) else 1
            out = F.relu(bn(f"{p}.bn1", F.conv2d(y, sd[f"{p}.conv1.weight"], stride=stride, padding=1)))
            out = bn(f"{p}.bn2", F.conv2d(out, sd[f"{p}.conv2.weight"], padding=1))
            shortcut = y
            if f"{p}.downsample.0.weight" in sd:
                shortcut = bn(f"{p}.downsample.1", F.conv2d(y, sd[f"{p}.downsample.0.weight"], stride=stride))
            y = F.relu(out + shortcut)
    return F.linear(y.mean(dim=(2, 3)), sd["fc.weight"], sd["fc.bias"])


def test_keys_and_shapes_map_to_variables():
    sd = torchvision_state_dict(width=8, in_channels=3, num_classes=5)
    model, variables = load_torchvision_resnet18(sd)
    assert model.stem == "imagenet"
    assert model.residual_widths == (8, 16, 32, 64)
    assert model.num_classes == 5
    params, stats = variables["params"], variables["batch_stats"]

    assert params["stem"]["conv"]["kernel"].shape == (7, 7, 3, 8)
    assert params["layer2"]["block0"]["downsample_conv"]["kernel"].shape == (1, 1, 8, 16)
    assert params["layer4"]["block1"]["conv2"]["kernel"].shape == (3, 3, 64, 64)
    assert params["fc"]["kernel"].shape == (64, 5)
    assert "downsample_conv" not in params["layer1"]["block0"]

    # Every tensor except num_batches_tracked is used exactly once.
    n_tensors = sum(v.numel() for k, v in sd.items() if not k.endswith("num_batches_tracked"))
    assert n_tensors == sum(a.size for a in jax.tree.leaves(variables))
    assert model.num_stored() == n_tensors

    np.testing.assert_array_equal(stats["layer3"]["block0"]["downsample_bn"]["var"], sd["layer3.0.downsample.1.running_var"].numpy())
    np.testing.assert_array_equal(params["layer1"]["block1"]["bn2"]["scale"], sd["layer1.1.bn2.weight"].numpy())
    np.testing.assert_array_equal(params["fc"]["kernel"], sd["fc.weight"].numpy().T)


def test_conv_and_batch_norm_layout_match_torch():
    sd = torchvision_state_dict(width=8)
    _, variables = load_torchvision_resnet18(sd)
    x = torch.randn(2, 8, 9, 9, generator=torch.Generator().manual_seed(1))
    x_nhwc = jnp.asarray(x.numpy().transpose(0, 2, 3, 1))

    # One conv: layer1.0.conv1 (3×3, padding 1) as OIHW in torch, HWIO here.
    p = variables["params"]["layer1"]["block0"]
    want = F.conv2d(x, sd["layer1.0.conv1.weight"], padding=1).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(_conv(x_nhwc, p["conv1"]["kernel"], 1, 1), want, atol=1e-5)

    # One BatchNorm in inference mode with running statistics.
    st = variables["batch_stats"]["layer1"]["block0"]
    want = F.batch_norm(
        x, sd["layer1.0.bn1.running_mean"], sd["layer1.0.bn1.running_var"], sd["layer1.0.bn1.weight"], sd["layer1.0.bn1.bias"], False, 0.0, 1e-5
    ).numpy().transpose(0, 2, 3, 1)
    got, _ = _batch_norm(x_nhwc, p["bn1"], st["bn1"], "running")
    np.testing.assert_allclose(got, want, atol=1e-5)

    # Batch statistics match torch's training-mode normalization (biased variance).
    want = F.batch_norm(x, None, None, sd["layer1.0.bn1.weight"], sd["layer1.0.bn1.bias"], True, 0.0, 1e-5)
    got, _ = _batch_norm(x_nhwc, p["bn1"], st["bn1"], "batch")
    np.testing.assert_allclose(got, want.numpy().transpose(0, 2, 3, 1), atol=1e-5)


@pytest.mark.parametrize("stem_kernel, in_channels, size", [(7, 3, 32), (3, 1, 8)])
def test_full_forward_matches_torch(stem_kernel, in_channels, size):
    sd = torchvision_state_dict(width=4, in_channels=in_channels, num_classes=6, stem_kernel=stem_kernel)
    model, variables = load_torchvision_resnet18(sd)
    x = torch.randn(3, in_channels, size, size, generator=torch.Generator().manual_seed(2))
    want = torch_resnet18_forward(sd, x, stem_kernel).numpy()
    got = jax.jit(model.apply)(variables, jnp.asarray(x.numpy().transpose(0, 2, 3, 1)))
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


def test_load_from_pt_and_safetensors(tmp_path):
    from safetensors.torch import save_file

    sd = torchvision_state_dict(width=4, stem_kernel=3, in_channels=1)
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "resnet.pth")
    save_file({k: v.contiguous() for k, v in sd.items()}, tmp_path / "resnet.safetensors")

    model_pt, vars_pt = load_torchvision_resnet18(tmp_path / "resnet.pth", granularity=2)
    model_st, vars_st = load_torchvision_resnet18(str(tmp_path / "resnet.safetensors"), granularity=2)
    assert model_pt == model_st
    assert model_pt.stem == "cifar"
    assert model_pt.granularity == 2
    for a, b in zip(jax.tree.leaves(vars_pt), jax.tree.leaves(vars_st)):
        np.testing.assert_array_equal(a, b)


def test_rejects_wrong_state_dict():
    sd = torchvision_state_dict(width=4)
    del sd["layer2.0.downsample.0.weight"]
    sd["extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"missing keys \['layer2.0.downsample.0.weight'\].*unexpected keys \['extra.weight'\]"):
        load_torchvision_resnet18(sd)
    with pytest.raises(ValueError, match="shape"):
        load_torchvision_resnet18(torchvision_state_dict(width=4, stem_kernel=3), stem="imagenet")
