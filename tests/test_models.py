"""Registry-driven model tests (timm's test_models style): every G x D x resolution x channels x conditioning."""

from __future__ import annotations

import itertools

import pytest
import torch

from gan_augment.models import create_discriminator, create_generator, list_discriminators, list_generators

RESOLUTIONS = (28, 32, 64, 128, 256)
SUPPORTED = {"dcgan": RESOLUTIONS, "sngan": RESOLUTIONS, "resnet": (32, 64, 128, 256), "fastgan": (32, 64, 128, 256),
             "projected": (32, 64, 128, 256)}
# the projected D's frozen backbone is random here (pretrained=False): these cases test shapes and gradients,
# which do not depend on the weights; tests/test_data_efficient.py uses the ImageNet weights
D_KWARGS = {"projected": {"pretrained": False}}
NEW = ("fastgan", "projected")  # the data-efficient pair: every resolution together, 32 / 64 px with the others


def _case(g: str, d: str, r: int) -> bool:
    if r not in SUPPORTED[g] or r not in SUPPORTED[d]:
        return False
    return (g, d) == NEW or not (g in NEW or d in NEW) or r <= 64


CASES = [(g, d, r, c, k) for g, d, r, c, k in itertools.product(
    list_generators(), list_discriminators(), RESOLUTIONS, (1, 3), (0, 3)) if g in SUPPORTED and _case(g, d, r)]
# "cascade" is a trained generator plus an upsampler (tests/test_cascade.py), not a network trained from scratch


def test_registry_lists_every_seed_architecture():
    assert list_generators() == ["cascade", "dcgan", "fastgan", "resnet"]
    assert list_discriminators() == ["dcgan", "projected", "resnet", "sngan"]
    with pytest.raises(ValueError, match=r"unknown generator 'stylegan9'; available: \['cascade', 'dcgan', 'fastgan', 'resnet'\]"):
        create_generator("stylegan9", resolution=64)
    with pytest.raises(ValueError, match=r"unsupported resolution 28; supported: \[32, 64, 128, 256\]"):
        create_generator("resnet", resolution=28)
    with pytest.raises(ValueError, match="unsupported resolution 100"):
        create_discriminator("dcgan", resolution=100)


def _assert_all_grads(module: torch.nn.Module, what: str) -> None:
    for name, p in module.named_parameters():
        assert p.grad is not None, f"{what}: no gradient for {name}"
        assert torch.isfinite(p.grad).all(), f"{what}: non-finite gradient for {name}"
        assert p.grad.abs().sum() > 0, f"{what}: zero gradient for {name}"


@pytest.mark.parametrize("g_name,d_name,res,channels,num_classes", CASES,
                         ids=[f"{g}-{d}-{r}px-{c}ch-{'cond' if k else 'uncond'}" for g, d, r, c, k in CASES])
def test_forward_backward(g_name, d_name, res, channels, num_classes):
    torch.manual_seed(0)
    G = create_generator(g_name, resolution=res, num_classes=num_classes, channels=channels, base_channels=4,
                         z_dim=8)
    D = create_discriminator(d_name, resolution=res, num_classes=num_classes, channels=channels, base_channels=4,
                             **D_KWARGS.get(d_name, {}))
    assert (G.z_dim, G.num_classes, G.resolution, G.channels) == (8, num_classes, res, channels)
    y = torch.tensor([0, 1, 2, 0]) if num_classes else None
    x = G(torch.randn(4, G.z_dim), y)
    assert x.shape == (4, channels, res, res)
    assert torch.isfinite(x).all() and x.min() >= -1 and x.max() <= 1
    logits = D(x, y)
    # one logit per image, or K per image (the projected D scores every position of every scale)
    assert logits.shape[0] == 4 and logits.ndim in (1, 2) and torch.isfinite(logits).all()
    (logits.mean() + D(torch.rand(4, channels, res, res) * 2 - 1, y).mean()).backward()
    _assert_all_grads(G, f"G {g_name}")
    _assert_all_grads(D, f"D {d_name}")


def test_conditioning_changes_output_and_is_checked():
    torch.manual_seed(0)
    G = create_generator("dcgan", resolution=32, num_classes=3, base_channels=8)
    z = torch.randn(2, G.z_dim)
    G.eval()  # running statistics, so a per-class shift is not normalised away by the batch
    with torch.no_grad():
        G.norms[-1].bias.weight[1] += 0.5  # make classes differ at init
        a, b = G(z, torch.tensor([0, 0])), G(z, torch.tensor([1, 1]))
    assert (a - b).abs().mean() > 1e-3
    with pytest.raises(ValueError, match="class-conditional"):
        G(z)
    U = create_generator("dcgan", resolution=32, num_classes=0, base_channels=8)
    with pytest.raises(ValueError, match="unconditional"):
        U(torch.randn(2, U.z_dim), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"z must have shape \(N, 100\)"):
        U(torch.randn(2, 7))


def test_projection_discriminator_uses_the_class():
    torch.manual_seed(0)
    D = create_discriminator("resnet", resolution=32, num_classes=4, base_channels=8)
    x = torch.randn(3, 3, 32, 32)
    assert not torch.allclose(D(x, torch.tensor([0, 0, 0])), D(x, torch.tensor([3, 3, 3])))


def test_sample_api_is_seeded_and_batched():
    G = create_generator("resnet", resolution=32, num_classes=3, base_channels=8)
    G.class_names = ["a", "b", "c"]
    s1 = G.sample(10, "b", seed=7, batch_size=3)
    s2 = G.sample(10, 1, seed=7, batch_size=10)
    assert s1.dtype == torch.uint8 and s1.shape == (10, 3, 32, 32)
    assert torch.equal(s1, G.sample(10, "b", seed=7, batch_size=3))  # same seed, same images
    # batch size changes only float rounding (at most 1 grey level); name and index are the same class
    assert (s1.int() - s2.int()).abs().max() <= 1
    assert not torch.equal(s1, G.sample(10, 1, seed=8))
    f = G.sample(4, [0, 1, 2, 0], seed=7, output="float")
    assert f.dtype == torch.float32 and f.min() >= -1 and f.max() <= 1
    assert G.training  # mode restored
    with pytest.raises(ValueError, match=r"unknown class 'z'; classes are \['a', 'b', 'c'\]"):
        G.sample(2, "z")
    with pytest.raises(ValueError, match="pass class_"):
        G.sample(2)
    with pytest.raises(ValueError, match="out of range"):
        G.sample(2, 5)
    assert G.sample(0, 0).shape == (0, 3, 32, 32)
