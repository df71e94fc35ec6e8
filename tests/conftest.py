"""Shared test helpers: hypothesis profiles, tree comparison, an independent torch VGG."""

from __future__ import annotations

import os

from cam_jax.xla_flags import use_ynn_for_dots_only

use_ynn_for_dots_only()  # the settings the command lines run under; before JAX starts

import jax
import numpy as np
import pytest
from hypothesis import settings

# jit compiles on the first example, so no deadline; CI replays the same examples.
settings.register_profile("ci", derandomize=True, deadline=None, max_examples=10, print_blob=True)
settings.register_profile("dev", deadline=None, max_examples=50)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def assert_trees_all_close(a, b, atol=0.0, rtol=0.0):
    """Assert two pytrees have the same structure and leaves within tolerance."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
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


def torch_gradcam(net, x_nchw, pre_relu=False):
    """GradCAM with torch autograd on the net's last conv map (the reference)."""
    torch = pytest.importorskip("torch")
    feats = list(net.features)
    last_relu = len(feats) - 2  # ..., conv5_3, ReLU, MaxPool
    cut = last_relu if pre_relu else last_relu + 1
    a = torch.nn.Sequential(*feats[:cut])(x_nchw).detach().requires_grad_(True)
    z = torch.nn.Sequential(*feats[cut:])(a)
    logits = net.classifier(torch.flatten(z, 1))
    classes = logits.argmax(1)
    logits.gather(1, classes[:, None]).sum().backward()
    alpha = a.grad.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((alpha * a).sum(1))
    return logits.detach().numpy(), classes.numpy(), cam.detach().numpy()
