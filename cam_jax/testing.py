"""Helpers the tests import: tree comparison, random models, independent torch references, fake data.

The torch references are built from `torch.nn` directly (torchvision is not
needed) with torchvision's module names, so their `state_dict()` has the real
keys. They skip the calling test when torch is not installed.
"""

from __future__ import annotations

import io
import os
import tarfile

import jax
import numpy as np
import pytest
from PIL import Image

from cam_jax.model import Model
from cam_jax.models.init import init_params
from cam_jax.models.registry import build_model


def random_model(arch: str, seed: int = 0, **kwargs) -> Model:
    """A randomly initialised model of a registered arch (`build_model`'s keyword arguments).

    Example:
      >>> random_model("vgg11", num_classes=3, input_size=32, width=1 / 16).cam_size
      2
    """
    module = build_model(arch, **kwargs)
    return Model(module, init_params(module, seed))


def assert_trees_all_close(a, b, atol=0.0, rtol=0.0):
    """Assert two pytrees have the same structure and leaves within tolerance."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=rtol)


def torch_vgg(stages, hidden, num_classes, seed=0):
    """torchvision's VGG layout built from torch.nn directly (torchvision is not needed).

    The Sequential indices match torchvision's, so `state_dict()` has the real keys.
    """
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(seed)
    layers, cin = [], 3
    for stage in stages:
        for w in stage:
            layers += [nn.Conv2d(cin, w, 3, padding=1), nn.ReLU(inplace=False)]
            cin = w
        layers.append(nn.MaxPool2d(2, 2))
    features = nn.Sequential(*layers)

    class Net(nn.Module):
        def __init__(self, side):
            super().__init__()
            self.features = features
            self.classifier = nn.Sequential(
                nn.Linear(cin * side * side, hidden), nn.ReLU(), nn.Dropout(),
                nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(),
                nn.Linear(hidden, num_classes),
            )

        def forward(self, x):
            return self.classifier(torch.flatten(self.features(x), 1))

    return Net


def make_torch_vgg(stages, hidden, num_classes, input_size, seed=0):
    """A randomly initialised torch VGG in eval mode, biases made non-zero."""
    torch = pytest.importorskip("torch")
    net = torch_vgg(stages, hidden, num_classes, seed)(input_size // 32).eval()
    with torch.no_grad():
        for p in net.parameters():
            if p.ndim == 1:
                p.uniform_(-0.1, 0.1)
    return net


def torch_cam(features, head, x_nchw):
    """GradCAM with torch autograd: A = features(x) (NCHW), logits = head(A), top class, the reference map.

    Returns (logits (B, C), classes (B,), map (B, h, w)) as numpy arrays.
    """
    torch = pytest.importorskip("torch")
    a = features(x_nchw).detach().requires_grad_(True)
    logits = head(a)
    classes = logits.argmax(1)
    logits.gather(1, classes[:, None]).sum().backward()
    alpha = a.grad.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((alpha * a).sum(1))
    return logits.detach().numpy(), classes.numpy(), cam.detach().numpy()


def torch_gradcam(net, x_nchw, pre_relu=False):
    """GradCAM with torch autograd on a torch VGG's last conv map (the reference)."""
    torch = pytest.importorskip("torch")
    feats = list(net.features)
    last_relu = len(feats) - 2  # ..., conv5_3, ReLU, MaxPool
    cut = last_relu if pre_relu else last_relu + 1
    return torch_cam(torch.nn.Sequential(*feats[:cut]),
                     lambda a: net.classifier(torch.flatten(torch.nn.Sequential(*feats[cut:])(a), 1)), x_nchw)


def torch_resnet(blocks, bottleneck, width=64, num_classes=1000, seed=0):
    """torchvision's ResNet layout (v1.5) built from torch.nn, in eval mode, with random batch-norm
    statistics and affine parameters so that folding them is exercised.

    The module has `features(x)` (through layer4, NCHW) and `head(a)` (avgpool, fc) besides `forward`.
    """
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(seed)
    expansion = 4 if bottleneck else 1

    class Block(nn.Module):
        def __init__(self, cin, planes, stride):
            super().__init__()
            shapes = ([(cin, planes, 1, 1), (planes, planes, 3, stride), (planes, planes * 4, 1, 1)] if bottleneck
                      else [(cin, planes, 3, stride), (planes, planes, 3, 1)])
            for j, (i, o, k, s) in enumerate(shapes, 1):
                setattr(self, f"conv{j}", nn.Conv2d(i, o, k, s, k // 2, bias=False))
                setattr(self, f"bn{j}", nn.BatchNorm2d(o))
            self.n = len(shapes)
            self.downsample = None
            if stride != 1 or cin != planes * expansion:
                self.downsample = nn.Sequential(nn.Conv2d(cin, planes * expansion, 1, stride, bias=False),
                                                nn.BatchNorm2d(planes * expansion))

        def forward(self, x):
            out = x
            for j in range(1, self.n + 1):
                out = getattr(self, f"bn{j}")(getattr(self, f"conv{j}")(out))
                out = torch.relu(out) if j < self.n else out
            return torch.relu(out + (x if self.downsample is None else self.downsample(x)))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            cin = width
            for s, n in enumerate(blocks):
                planes = width * 2**s
                layer = []
                for i in range(n):
                    layer.append(Block(cin, planes, 2 if s > 0 and i == 0 else 1))
                    cin = planes * expansion
                setattr(self, f"layer{s + 1}", nn.Sequential(*layer))
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(cin, num_classes)

        def features(self, x):
            x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
            for s in range(len(blocks)):
                x = getattr(self, f"layer{s + 1}")(x)
            return x

        def head(self, a):
            return self.fc(torch.flatten(self.avgpool(a), 1))

        def forward(self, x):
            return self.head(self.features(x))

    net = Net().eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net


def write_fake_val_tar(path: str | os.PathLike, count: int, seed: int = 0) -> None:
    """A tar laid out like ILSVRC2012_img_val.tar with `count` generated JPEGs."""
    rng = np.random.default_rng(seed)
    with tarfile.open(path, "w") as tar:
        for i in range(1, count + 1):
            h, w = rng.integers(200, 320, 2)
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, format="JPEG")
            info = tarfile.TarInfo(f"ILSVRC2012_val_{i:08d}.JPEG")
            info.size = buf.tell()
            buf.seek(0)
            tar.addfile(info, buf)
