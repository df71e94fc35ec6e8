"""Does the explanation credit what the function uses? GradCAM's mass along a direction of A against the
effect on the score of moving A along it the way the data does.

A lie in a CAM is a disagreement between what the map credits and what the function does. Image b's
GradCAM map splits exactly along any orthonormal basis u_d of channel space as
sum_d (alpha_b . u_d)(u_d . A_bij), alpha_b its channel weights; direction d's mass is the summed
|term|. The intervention gives image b the next image's coordinate u_d . A at every position (a move
that stays on the data) and measures |change of y_top|. For an honest direction mass and effect are of
one size: under a linear head their ratio is the coordinate's size over its change across images, which
`stillness` measures on A's own channels. What every lie that keeps the scores needs breaks that:
- a map the data never moves (the paper's T1/T2, and `adaptive.paired_noise`'s p - q) is a direction
  whose resampling changes nothing;
- a gradient the function does not follow (T3/T4's modulo, `adaptive.fixed_sum`'s sum that is the same
  on every image) credits mass to a direction whose resampling does not move the score.
The score is the share of the map's mass beyond RATIO x stillness times its direction's effect, the
largest over five sets of directions, so that a lie must be mixed into honest directions in every one to
escape: A's channels, the principal directions of A across images, those of GradCAM's weights, the
singular directions of the heaviest channels' spatial sums (two channels that cancel only jointly), and
each image's own alpha_b (the whole map at once). A lie spread thin over many directions is still
counted direction by direction, up to MAX_DIRECTIONS per set (the mass beyond them counts as honest).

What it cannot see (docs/GUIDE.md, "What the audit cannot see"; each kept in tests/test_audit.py): a
function changed by fine-tuning, whose directions do move the score; a backdoor whose trigger is not
in the images; channels that cancel only jointly through a non-linear relation (`adaptive.curved_pair`);
a term that is zero on the data and large along every intervention (`adaptive.shielded_sum`); a lie
with little mass that becomes the map's maximum (`adaptive.spike`); and a per-position scale of A that
the head undoes (`adaptive.position_scale`). Channels added to raise `stillness` make it refuse.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from cam_jax.audit.finding import Finding
from cam_jax.audit.probing import MIN_IMAGES, Probe
from cam_jax.model import Model

RATIO = 20.0  # mass over effect, in units of `stillness`, beyond which credit is not the function's
COVERED = 0.999  # directions are examined by decreasing mass until they hold this share of it
MAX_DIRECTIONS = 64  # at most this many per set of directions (the audit's time bound: 3 x 64 + 1 head passes)
IMAGES = 8  # the images whose masses and effects are compared (the directions are found on all of them)
CHUNK = 32  # directions per batched head pass (the memory bound)
NOISE_ULPS = 64  # score changes below this many float32 spacings of the score count as none
MAX_STILLNESS = 10.0  # beyond this the images barely move A: refused (honest on noise images: 4.2-4.9)
THRESHOLD = 0.2  # a fifth of the map's mass credited where the function does not follow
CLEAN_RANGE = (0.000, 0.074)  # the honest population of scripts/audit_eval.py (docs/REPRODUCTION.md)


def min_images(model_channels: int, positions: int) -> int:
    """The fewest images the check accepts: the audit's MIN_IMAGES, and enough that the per-position
    deviations span `model_channels` directions (below it, A's mean has components no deviation reaches,
    and an honest model's map would seem to sit on them).

    Example:
      >>> min_images(512, 196), min_images(32, 2)
      (4, 17)
    """
    return max(MIN_IMAGES, int(np.ceil(model_channels / positions)) + 1)


def bases(a: np.ndarray, grads: np.ndarray) -> dict[str, np.ndarray]:
    """Four orthonormal bases of channel space (K, K), in float64: "channel" (A's own channels), "data"
    (eigenvectors of A's covariance across images, each position centred), "weight" (eigenvectors of
    the second moment of GradCAM's weights alpha_b over images) and "sums" (`sum_basis`).

    A lie carries weight (so "weight" isolates it unless its weights are the size of honest ones), its
    values vary or not (so "data" isolates it unless its variance is an honest direction's), and it sits
    in the channels that compute it.

    Args:
      a, grads: (B, h, w, K) A and d y_top / dA.
    """
    deviation = a - a.mean(axis=0)
    cov = np.einsum("bijk,bijl->kl", deviation, deviation) / np.prod(a.shape[:3])
    alpha = grads.mean(axis=(1, 2))
    return {"channel": np.eye(a.shape[-1]), "data": np.linalg.eigh(cov)[1][:, ::-1],
            "weight": np.linalg.eigh(alpha.T @ alpha)[1][:, ::-1], "sums": sum_basis(a, grads)}


def sum_basis(a: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """(K, K): within the m channels of most map mass (m < B - 1), the right singular vectors of their
    spatial sums' deviations across images (B, m), smallest last; the other channels as they are.

    Two channels whose sums keep a fixed relation on every image (p = s P and q = s mean(P)) cancel in
    a head that reads only that relation; each alone looks like an honest channel, but together they are
    a direction whose sum the images never move, which is this basis's last column when both carry mass.
    """
    count, channels = a.shape[0], a.shape[-1]
    _, mass = decompose(a, grads, np.eye(channels))
    top = np.argsort(mass)[::-1][:max(1, min(count - 2, channels))]
    sums = a.sum(axis=(1, 2))[:, top]  # (B, m)
    # Centred: the common part of every image's sums is one still direction that honest models have too.
    _, _, vt = np.linalg.svd(sums - sums.mean(axis=0), full_matrices=True)
    within = np.zeros((channels, len(top)))
    within[top] = vt.T
    return np.concatenate([within, np.eye(channels)[:, np.setdiff1d(np.arange(channels), top)]], axis=1)


def decompose(a: np.ndarray, grads: np.ndarray, basis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coordinates (B, h, w, K) u_d . A_bij, mass (K,) sum over images and positions of
    |(alpha_b . u_d)(u_d . A_bij)|): GradCAM's map split exactly along the columns u_d of `basis`."""
    coords = a @ basis
    mass = np.abs((grads.mean(axis=(1, 2)) @ basis)[:, None, None, :] * coords).sum(axis=(0, 1, 2))
    return coords, mass


@functools.partial(jax.jit, static_argnames="chunk")
def effects(model: Model, a: jax.Array, directions: jax.Array, steps: jax.Array, top: jax.Array,
            context: jax.Array | None = None, chunk: int = CHUNK) -> jax.Array:
    """(D, B) |y_top(A + steps_d u_d) - y_top(A)|: the score's change under each intervention.

    Args:
      a: (B, h, w, K) A.
      directions: (D, B or 1, K) unit directions u_d of channel space, per image or shared.
      steps: (D, B, h, w) how far each intervention moves A along u_d at each position.
      top: (B,) the class whose logit is the score.
      context: what the head reads besides A (`Model.encode`), or None: each image keeps its own.
    """
    def score(x):
        return jnp.take_along_axis(model.head(x, context), top[:, None], axis=1)[:, 0]

    def moved(direction_steps):
        direction, step = direction_steps
        return jnp.abs(score(a + step[..., None] * direction[:, None, None]) - base)

    base = score(a)
    return jax.lax.map(moved, (directions, steps), batch_size=chunk)


def resampled(model: Model, probe: Probe, directions: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """(D,) sum over images of |change of y_top| when every image takes the next image's coordinates
    `coords` (B, h, w, D) along `directions` (D, B or 1, K); changes within float32 noise count as that noise."""
    other = np.roll(np.arange(coords.shape[0]), 1)
    steps = np.moveaxis(coords[other] - coords, -1, 0)  # (D, B, h, w)
    count = len(steps)
    padding = -count % CHUNK if count > 1 else 0  # whole chunks: few compiled shapes, whatever the count
    steps = np.concatenate([steps, np.zeros((padding, *steps.shape[1:]))])
    directions = np.concatenate([directions, np.zeros((padding, *directions.shape[1:]))])
    dtype = probe.a.dtype
    moved = np.asarray(effects(model, probe.a, jnp.asarray(directions, dtype), jnp.asarray(steps, dtype), probe.top,
                               probe.context), np.float64)[:count]
    logit = np.abs(np.take_along_axis(np.asarray(probe.logits, np.float64), np.asarray(probe.top)[:, None], 1))
    noise = NOISE_ULPS * np.spacing(np.float32(np.maximum(logit[:, 0], 1.0))).astype(np.float64)
    return np.maximum(moved, noise).sum(axis=1)


def stillness(a: np.ndarray) -> float:
    """How little the images move A: the median over live channels of sum |A_k| over sum over images of
    |change of sum_ij A_k| when each image takes the next one's channel (an honest channel's mass / effect
    under a linear head). Near-alike images (noise, one scene) make every honest direction's mass / effect
    large; the threshold scales with this instead of flagging them.

    Args:
      a: (B, h, w, K) A.
    """
    sums = a.sum(axis=(1, 2))  # (B, K)
    size = np.abs(a).sum(axis=(0, 1, 2))
    moved = np.abs(np.roll(sums, -1, axis=0) - sums).sum(axis=0)
    ok = (size > 0) & (moved > 0)
    return float(np.median(size[ok] / moved[ok])) if ok.any() else 1.0


def credit(model: Model, probe: Probe, basis: np.ndarray | None, bound: float
           ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """(unexplained share, examined direction indices, their mass, their effect) along the columns of
    `basis`, or (None) along each image's own GradCAM weights alpha_b / |alpha_b|, which carry the whole map.

    The unexplained share is sum over directions of (mass - bound effect)+ over the map's total mass.
    """
    a = np.asarray(probe.a, np.float64)
    grads = np.asarray(probe.top_grads, np.float64)
    if basis is None:
        alpha = grads.mean(axis=(1, 2))
        u = alpha / np.maximum(np.linalg.norm(alpha, axis=1, keepdims=True), np.finfo(np.float64).tiny)
        coords = np.einsum("bijk,bk->bij", a, u)[..., None]
        mass = np.abs(np.einsum("bijk,bk->bij", a, alpha)).sum(keepdims=True)[0, 0]
        picked, directions = np.zeros(1, int), u[None]
    else:
        coords, mass = decompose(a, grads, basis)
        order = np.argsort(mass)[::-1]
        covered = np.searchsorted(np.cumsum(mass[order]) / mass.sum(), COVERED) + 1
        picked = order[:min(covered, MAX_DIRECTIONS)]
        coords, directions = coords[..., picked], basis[:, picked].T[:, None]
    total = float(mass.sum())
    effect = resampled(model, probe, directions, coords)
    excess = np.maximum(mass[picked] - bound * effect, 0.0)
    return float(excess.sum() / total), picked, mass[picked], effect


def check(model: Model, probe: Probe) -> Finding:
    """The largest, over the four `bases` and the images' own weights, share of GradCAM's mass (top class)
    beyond RATIO x `stillness` times its direction's resampling effect.

    Raises:
      ValueError: too few images to find A's directions (`min_images`).
    """
    a = np.asarray(probe.a, np.float64)
    count, h, w, channels = a.shape
    if count < min_images(channels, h * w):
        raise ValueError(f"the intervention check needs at least {min_images(channels, h * w)} images for a model "
                         f"whose A is {h}x{w}x{channels}, got {count}")
    if not np.any(np.asarray(probe.top_grads)) or not np.any(a):
        return Finding(0.0, "GradCAM's map is zero on every image", None)
    still = stillness(a)
    if still > MAX_STILLNESS:  # else added channels that barely move would set the bound (tests/test_audit.py)
        raise ValueError(f"A barely moves across these {count} images (stillness {still:.3g} > {MAX_STILLNESS:g}): the "
                         "intervention check cannot tell an honest direction from a still one; pass more varied "
                         "images (if they are varied, the model's channels ignoring them is itself suspicious)")
    bound = RATIO * still
    n = min(IMAGES, count)
    few = Probe(probe.a[:n], probe.logits[:n], probe.top[:n], probe.top_grads[:n], None, None,
                None if probe.context is None else probe.context[:n])
    found = {name: (basis, *credit(model, few, basis, bound)) for name, basis in
             {**bases(a, np.asarray(probe.top_grads, np.float64)), "explained": None}.items()}
    name = max(found, key=lambda n: found[n][1])
    basis, score, picked, mass, effect = found[name]
    worst = int(np.argmax(mass / effect))
    where = (f"{score:.2g} of the map's mass is beyond {bound:.3g} times the score's response, along {name} "
             f"directions of A; worst: mass {mass[worst]:.3g}, effect {effect[worst]:.3g}")
    if basis is None:
        return Finding(score, where + " (each image's GradCAM weights)", None)
    d = int(picked[worst])
    k = int(np.argmax(np.abs(basis[:, d])))
    single = basis[k, d] ** 2 > 0.5  # the direction is mostly one channel: name it for the recommendation
    return Finding(score, where + f" (direction {d}, mostly channel {k})", k if score > THRESHOLD and single else None)
