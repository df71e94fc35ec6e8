"""Independent references in torch: the networks in torchvision's layout and every explanation restated.

The networks are built from `torch.nn` directly (torchvision is not needed) with torchvision's module
names, so their `state_dict()` has the real keys. torch is imported where it is used: the torch extra.
"""

from __future__ import annotations

import numpy as np


def torch_vgg(stages, hidden, num_classes, seed=0):
    """torchvision's VGG layout built from torch.nn directly (torchvision is not needed).

    The Sequential indices match torchvision's, so `state_dict()` has the real keys.
    """
    import torch
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
    import torch
    net = torch_vgg(stages, hidden, num_classes, seed)(input_size // 32).eval()
    with torch.no_grad():
        for p in net.parameters():
            if p.ndim == 1:
                p.uniform_(-0.1, 0.1)
    return net


def torch_network(arch: str, width: float = 1.0, num_classes: int = 1000, input_size: int = 224, seed: int = 0,
                  he_init: bool = False):
    """(a random torch VGG, ResNet or ViT in torchvision's layout, the module whose output is A: for a ViT
    the last block's ln_1, whose output holds the class token too, `vit_reshape` drops it).

    `he_init` redraws every conv and linear weight with He's normal init, which keeps narrow networks'
    activations alive through all their layers (the default init lets a 1/16-wide VGG-16's die out).
    """
    import torch

    from cam_jax.models.resnet import BLOCKS
    from cam_jax.models.vgg import STAGES
    from cam_jax.models.vit import SIZES

    if arch in SIZES:
        patch, depth, heads, hidden, mlp = SIZES[arch]
        narrow = max(1, round(heads * width))
        net = torch_vit(patch, depth, narrow, narrow * hidden // heads, narrow * mlp // heads, num_classes,
                        input_size, seed)
        layer = net.encoder.layers[-1].ln_1
    elif arch in STAGES:
        stages = tuple(tuple(max(1, round(w * width)) for w in s) for s in STAGES[arch])
        net = make_torch_vgg(stages, max(1, round(4096 * width)), num_classes, input_size, seed)
        layer = net.features[-2]  # the last conv's ReLU, before the last max-pool
    else:
        bottleneck, blocks = BLOCKS[arch]
        net = torch_resnet(blocks, bottleneck, max(1, round(64 * width)), num_classes, seed)
        layer = net.layer4[-1]
    if he_init:
        torch.manual_seed(seed)
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                    torch.nn.init.kaiming_normal_(m.weight)
    return net, layer


def torch_vit(patch: int, layers: int, heads: int, hidden: int, mlp: int, num_classes: int, input_size: int,
              seed: int = 0):
    """torchvision's VisionTransformer layout built from torch.nn (`nn.MultiheadAttention`, `nn.GELU`), in eval
    mode: its `state_dict()` has torchvision's keys. The class token and position embeddings are drawn at
    random (torchvision starts the class token at zero), so that the class token's path is exercised."""
    from collections import OrderedDict

    import torch
    from torch import nn

    class EncoderBlock(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = nn.LayerNorm(hidden, eps=1e-6)
            self.self_attention = nn.MultiheadAttention(hidden, heads, batch_first=True)
            self.dropout = nn.Dropout(0.0)
            self.ln_2 = nn.LayerNorm(hidden, eps=1e-6)
            self.mlp = nn.Sequential(nn.Linear(hidden, mlp), nn.GELU(), nn.Dropout(0.0), nn.Linear(mlp, hidden),
                                     nn.Dropout(0.0))

        def forward(self, inputs):
            x = self.ln_1(inputs)
            x, _ = self.self_attention(x, x, x, need_weights=False)
            x = self.dropout(x) + inputs
            return x + self.mlp(self.ln_2(x))

    class Encoder(nn.Module):
        def __init__(self, tokens):
            super().__init__()
            self.pos_embedding = nn.Parameter(torch.randn(1, tokens, hidden) * 0.02)
            self.dropout = nn.Dropout(0.0)
            self.layers = nn.Sequential(OrderedDict((f"encoder_layer_{i}", EncoderBlock()) for i in range(layers)))
            self.ln = nn.LayerNorm(hidden, eps=1e-6)

        def forward(self, x):
            return self.ln(self.layers(self.dropout(x + self.pos_embedding)))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv_proj = nn.Conv2d(3, hidden, patch, patch)
            self.class_token = nn.Parameter(torch.randn(1, 1, hidden))
            self.encoder = Encoder((input_size // patch) ** 2 + 1)
            self.heads = nn.Sequential(OrderedDict(head=nn.Linear(hidden, num_classes)))

        def forward(self, x):
            x = self.conv_proj(x).flatten(2).transpose(1, 2)
            x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
            return self.heads(self.encoder(x)[:, 0])

    torch.manual_seed(seed)
    with torch.no_grad():
        net = Net()
        for name, p in net.named_parameters():  # LayerNorms and biases away from 1 and 0, so that a swap shows
            if name.endswith(("ln_1.weight", "ln_2.weight", "ln.weight")):
                p.uniform_(0.5, 1.5)
            elif name.endswith("bias"):
                p.normal_(0.0, 0.1)
    return net.eval()


def vit_reshape(tokens):
    """pytorch-grad-cam's `reshape_transform` for a ViT: (B, 1 + g*g, D) tokens -> (B, D, g, g), class token
    dropped (its documented recipe)."""
    grid = int(round((tokens.shape[1] - 1) ** 0.5))
    return tokens[:, 1:].reshape(tokens.shape[0], grid, grid, tokens.shape[2]).permute(0, 3, 1, 2)


def torch_vit_split(net, x_nchw):
    """(features, head) of a torch ViT on the images x_nchw, as the CNN references take them: features(x) is
    the last ln_1's patch tokens as (B, D, g, g); head(a) reruns the network on x_nchw with those tokens
    replaced by a (the class token and the residual stream kept: the ViT's context)."""
    import torch

    ln_1, x = net.encoder.layers[-1].ln_1, torch.as_tensor(x_nchw)

    def run(replacement=None):
        kept = {}

        def hook(module, inputs, output):
            kept["a"] = vit_reshape(output)
            if replacement is not None:
                return torch.cat([output[:, :1], replacement.flatten(2).transpose(1, 2)], dim=1)

        handle = ln_1.register_forward_hook(hook)
        try:
            logits = net(x)
        finally:
            handle.remove()
        return logits, kept["a"]

    return (lambda _: run()[1]), (lambda a: run(a)[0])


def torch_vit_cam(net, x_nchw):
    """GradCAM with torch autograd at a torch ViT's last ln_1 (a forward hook keeps its output and its
    gradient), class token dropped: (logits (B, C), classes (B,), map (B, g, g), A (B, g, g, D)) as numpy."""
    import torch

    kept = {}

    def hook(module, inputs, output):
        output.retain_grad()
        kept["a"] = output

    handle = net.encoder.layers[-1].ln_1.register_forward_hook(hook)
    try:
        logits = net(torch.as_tensor(x_nchw))
    finally:
        handle.remove()
    classes = logits.argmax(1)
    logits.gather(1, classes[:, None]).sum().backward()
    a, grad = vit_reshape(kept["a"]), vit_reshape(kept["a"].grad)
    cam = torch.relu((grad.mean(dim=(2, 3), keepdim=True) * a).sum(1))
    return (logits.detach().numpy(), classes.numpy(), cam.detach().numpy(),
            a.detach().permute(0, 2, 3, 1).numpy())


# cam_jax's method names -> pytorch-grad-cam's classes (`pytorch_grad_cam.<name>`).
GRAD_CAM_CLASSES = {"gradcam": "GradCAM", "gradcam++": "GradCAMPlusPlus", "xgradcam": "XGradCAM",
                    "hirescam": "HiResCAM", "layercam": "LayerCAM", "eigengradcam": "EigenGradCAM",
                    "eigencam": "EigenCAM", "scorecam": "ScoreCAM", "ablationcam": "AblationCAM"}


def grad_cam(name: str, net, layer, reshape_transform=None):
    """pytorch-grad-cam's object for cam_jax's method `name`, on `net` with A the output of `layer` (through
    `reshape_transform` when given: `vit_reshape` for a ViT)."""
    import pytorch_grad_cam

    return getattr(pytorch_grad_cam, GRAD_CAM_CLASSES[name])(model=net, target_layers=[layer],
                                                              reshape_transform=reshape_transform)


def grad_cam_maps(net, layer, x_nchw, methods, reshape_transform=None) -> dict:
    """pytorch-grad-cam's own maps for `methods` (cam_jax's names, `GRAD_CAM_CLASSES`), each image's top class,
    raw: (B, h, w) at A's resolution, before the min-max scaling and resize it applies. EigenCAM and
    EigenGradCAM come with both signs of the principal direction, which its SVD picks arbitrarily:
    {name: (B, h, w) or (2, B, h, w)}.
    """
    from unittest import mock

    import torch
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    x = torch.as_tensor(x_nchw)
    out = {}
    with mock.patch("pytorch_grad_cam.base_cam.scale_cam_image", lambda cam, target_size=None: np.float32(cam)):
        for name in methods:
            def run(name=name):
                return grad_cam(name, net, layer, reshape_transform)(input_tensor=x, targets=None)
            if name not in ("eigencam", "eigengradcam"):
                out[name] = run()
                continue
            module = {"eigencam": "eigen_cam", "eigengradcam": "eigen_grad_cam"}[name]
            with mock.patch(f"pytorch_grad_cam.{module}.get_2d_projection", lambda a: -get_2d_projection(a)):
                flipped = run()
            out[name] = np.stack([run(), flipped])
    return out


def torch_cam(features, head, x_nchw):
    """GradCAM with torch autograd: A = features(x) (NCHW), logits = head(A), top class, the reference map.

    Returns (logits (B, C), classes (B,), map (B, h, w)) as numpy arrays.
    """
    import torch
    a = features(x_nchw).detach().requires_grad_(True)
    logits = head(a)
    classes = logits.argmax(1)
    logits.gather(1, classes[:, None]).sum().backward()
    alpha = a.grad.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((alpha * a).sum(1))
    return logits.detach().numpy(), classes.numpy(), cam.detach().numpy()


def torch_gradcam(net, x_nchw, pre_relu=False):
    """GradCAM with torch autograd on a torch VGG's last conv map (the reference)."""
    import torch
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
    import torch
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


def torch_reference_maps(features, head, x_nchw, target: str = "logit", contrast=None) -> dict:
    """Every CAM method and input-space attribution restated in torch, for the same split network.

    The CAM formulas are pytorch-grad-cam's (its get_cam_weights / get_cam_image), written out
    here because pytorch-grad-cam imports torchvision, which does not install beside the CPU torch;
    EigenCAM's principal direction comes from torch's SVD (ours by repeated squaring of the
    Gram matrix), its sign fixed by the same rule. Returns {"logits", "classes", "A", method: (B, h, w)}.
    """
    import torch

    def score(logits, classes):
        picked = logits.gather(1, classes[:, None])[:, 0]
        if target == "logit":
            return picked
        if target == "softmax":
            return torch.softmax(logits, 1).gather(1, classes[:, None])[:, 0]
        if target == "log_softmax":
            return torch.log_softmax(logits, 1).gather(1, classes[:, None])[:, 0]
        if target == "contrast_mean":
            return picked - logits.mean(1)
        return picked - logits.gather(1, torch.as_tensor(contrast, dtype=torch.long)[:, None])[:, 0]

    a = features(x_nchw).detach().requires_grad_(True)
    logits = head(a)
    classes = logits.argmax(1)
    score(logits, classes).sum().backward()
    g, act = a.grad, a.detach()
    total = act.sum(dim=(2, 3), keepdim=True)

    def weighted(w):
        return torch.relu((w[:, :, None, None] * act).sum(1))

    def projection(m):
        out = []
        for mi in m:
            flat = mi.reshape(mi.shape[0], -1).T.double()
            centred = flat - flat.mean(0)
            _, _, vt = torch.linalg.svd(centred, full_matrices=False)
            proj = centred @ vt[0]
            proj = proj if (proj * flat.sum(1)).sum() >= 0 else -proj
            out.append(proj.reshape(mi.shape[1:]).float())
        return torch.relu(torch.stack(out))

    g2 = g**2
    aij = torch.where(g != 0, g2 / (2 * g2 + total * g2 * g + 1e-6), torch.zeros_like(g))
    maps = {
        "gradcam": weighted(g.mean(dim=(2, 3))),
        "gradcam++": weighted((torch.relu(g) * aij).sum(dim=(2, 3))),
        "xgradcam": weighted((g * act / (total + 1e-7)).sum(dim=(2, 3))),
        "hirescam": torch.relu((g * act).sum(1)),
        "layercam": torch.relu((torch.relu(g) * act).sum(1)),
        "eigengradcam": projection(g * act),
        "eigencam": projection(act),
    }
    out = {name: m.detach().numpy() for name, m in maps.items()}
    return {**out, "logits": logits.detach().numpy(), "classes": classes.numpy(), "A": act.numpy()}


def torch_score_cam(net, features, x_nchw, classes):
    """ScoreCAM as pytorch-grad-cam computes it (aligned-corner upsampling, min-max + 1e-8, logit scores)."""
    import torch
    with torch.no_grad():
        act = features(x_nchw)
        up = torch.nn.functional.interpolate(act, size=x_nchw.shape[-2:], mode="bilinear", align_corners=True)
        flat = up.flatten(2)
        lo, hi = flat.min(-1)[0][:, :, None, None], flat.max(-1)[0][:, :, None, None]
        masks = (up - lo) / (hi - lo + 1e-8)
        scores = torch.stack([
            torch.stack([net(x_nchw[b:b + 1] * masks[b, k][None, None])[0, classes[b]] for k in range(act.shape[1])])
            for b in range(len(x_nchw))])
        w = torch.softmax(scores, -1)
        return torch.relu((w[:, :, None, None] * act).sum(1)).numpy()


def torch_ablation_cam(features, head, x_nchw, classes):
    """AblationCAM as pytorch-grad-cam computes it: (S - S_k) / S with channel k set to 0 (or min - 1e7)."""
    import torch
    with torch.no_grad():
        act = features(x_nchw)
        s0 = head(act).gather(1, torch.as_tensor(classes)[:, None])[:, 0]
        out = []
        for b in range(len(x_nchw)):
            value = 0.0 if act[b].min() == 0 else float(act[b].min()) - 1e7
            scores = []
            for k in range(act.shape[1]):
                ablated = act[b:b + 1].clone()
                ablated[0, k] = value
                scores.append(head(ablated)[0, classes[b]])
            w = (s0[b] - torch.stack(scores)) / s0[b]
            out.append(torch.relu((w[:, None, None] * act[b]).sum(0)))
        return torch.stack(out).numpy()


def torch_tiny(model):
    """The torch twin of a `testing.models.Tiny` model: the same weights in NCHW, in eval mode."""
    import torch

    params = jax_free(model.params)

    class TorchTiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = torch.nn.Conv2d(3, params["conv1"]["kernel"].shape[-1], 3, padding=1)
            self.conv2 = torch.nn.Conv2d(self.conv1.out_channels, params["conv2"]["kernel"].shape[-1], 3, padding=1)
            self.fc = torch.nn.Linear(*params["fc"]["kernel"].shape)

        def features(self, x):
            return torch.relu(self.conv2(torch.relu(self.conv1(x))))

        def forward(self, x):
            return self.fc(self.features(x).mean(dim=(2, 3)))

    net = TorchTiny()
    with torch.no_grad():
        for name in ("conv1", "conv2"):
            getattr(net, name).weight.copy_(torch.from_numpy(params[name]["kernel"].transpose(3, 2, 0, 1).copy()))
            getattr(net, name).bias.copy_(torch.from_numpy(np.array(params[name]["bias"])))
        net.fc.weight.copy_(torch.from_numpy(params["fc"]["kernel"].T.copy()))
        net.fc.bias.copy_(torch.from_numpy(np.array(params["fc"]["bias"])))
    return net.eval()


def tiny_params(net) -> dict:
    """A `torch_tiny` network's weights as a `Tiny` model's params (the inverse of `torch_tiny`)."""
    sd = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}  # not views: torch resets in place
    conv = lambda n: {"kernel": sd[f"{n}.weight"].transpose(2, 3, 1, 0), "bias": sd[f"{n}.bias"]}  # noqa: E731
    return {"conv1": conv("conv1"), "conv2": conv("conv2"), "fc": {"kernel": sd["fc.weight"].T, "bias": sd["fc.bias"]}}


def torch_tiny_gradcam(net, x_nchw, classes):
    """GradCAM of a `torch_tiny` network by torch autograd: ReLU(sum_k mean(dy_c/dA_k) A_k), (B, H, W) numpy."""
    import torch

    a = net.features(torch.as_tensor(x_nchw)).detach().requires_grad_(True)
    y = net.fc(a.mean(dim=(2, 3)))
    y[torch.arange(len(classes)), torch.as_tensor(classes)].sum().backward()
    return torch.relu((a.grad.mean(dim=(2, 3), keepdim=True) * a).sum(1)).detach().numpy()


def jax_free(tree):
    """A pytree of arrays as nested dicts of numpy arrays."""
    if isinstance(tree, dict):
        return {k: jax_free(v) for k, v in tree.items()}
    return np.asarray(tree)
