"""The domain classifier that scores generated images, and the image metrics it feeds.

The image protocol of the optimizer study (Vegna, "Effects of optimizer choice on mode
collapse in GANs"; Lee & Seok style) scores generated images with a classifier trained on
the same data: an Inception-style score, the KL between the generated label histogram and
the true one, and a Frechet distance on the classifier's penultimate features
(:mod:`jaxopt_lab.gan.metrics` has the formulas). This module supplies:

* :func:`domain_classifier`: a small CNN ``x [n, H, W, C] -> logits [n, classes]`` whose
  penultimate ReLU features come back as its one activation (``return_activations``);
* :func:`fit_classifier`: one classifier trained with Adam in one jitted ``lax.scan``, its
  held-out accuracy computed in the same program (data preparation, not a study: nothing
  is cached on disk);
* :func:`reference_stats`: the real data's label histogram and the Gaussian fit of the
  held-out images' features (what generated images are compared with);
* :func:`image_scores`: every metric at several sample sizes from ONE generated batch
  (the first ``n`` samples for size ``n``), pure and jit-able: it runs inside the GAN
  program as its evaluate hook.

Images are in ``[-1, 1]`` everywhere (the generator's ``tanh`` range).

References:
  Salimans et al., 2016. Improved techniques for training GANs (Inception score).
  Heusel et al., 2017. GANs trained by a two time-scale update rule converge to a local
  Nash equilibrium (FID).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxopt_lab._validation import as_key, check_int
from jaxopt_lab.gan import metrics
from jaxopt_lab.models.core import Model, make_model


class _Classifier(nnx.Module):
    def __init__(self, image_shape, num_classes, feature_dim, *, rngs):
        h, w, c = image_shape
        self.conv1 = nnx.Conv(c, 32, (3, 3), padding="SAME", rngs=rngs)
        self.conv2 = nnx.Conv(32, 64, (3, 3), padding="SAME", rngs=rngs)
        self.dense = nnx.Linear((h // 4) * (w // 4) * 64, feature_dim, rngs=rngs)
        self.out = nnx.Linear(feature_dim, num_classes, rngs=rngs)

    def __call__(self, x, return_activations=False):
        pool = lambda v: nnx.max_pool(v, (2, 2), strides=(2, 2), padding="VALID")  # noqa: E731
        h = pool(jax.nn.relu(self.conv1(x)))
        h = pool(jax.nn.relu(self.conv2(h)))
        f = jax.nn.relu(self.dense(h.reshape(x.shape[0], -1)))
        out = self.out(f)
        return (out, (f,)) if return_activations else out


def domain_classifier(image_shape: tuple[int, int, int], num_classes: int = 10,
                      feature_dim: int = 64) -> Model:
    """Small CNN: two 3x3 convolutions (32, 64 filters) with ReLU and 2x2 max-pooling, a
    ReLU feature layer of ``feature_dim`` units (the FID features) and a linear readout.

    ``apply(params, x)`` gives logits ``[n, num_classes]``; with ``return_activations``
    it gives ``(logits, (features [n, feature_dim],))``. H and W must be multiples of 4
    (28x28 Fashion-MNIST, 8x8 digits)."""
    if (not isinstance(image_shape, tuple) or len(image_shape) != 3
            or image_shape[0] % 4 or image_shape[1] % 4):
        raise ValueError(f"image_shape must be (H, W, C) with H, W multiples of 4, got "
                         f"{image_shape!r}")
    num_classes = check_int("num_classes", num_classes, minimum=2)
    feature_dim = check_int("feature_dim", feature_dim, minimum=2)
    return make_model(lambda rngs: _Classifier(image_shape, num_classes, feature_dim,
                                               rngs=rngs),
                      loss="cross_entropy", name="domain_classifier")


def probs_and_features(model: Model, params: Any, x: jax.Array, *,
                       chunk: int = 1000) -> tuple[jax.Array, jax.Array]:
    """Class probabilities ``[n, C]`` and penultimate features ``[n, F]`` of images ``x``,
    ``chunk`` images at a time (``lax.map``: bounded memory for 10,000 samples)."""

    def one(xi):
        logits, (feats,) = model.apply(params, xi[None], return_activations=True)
        return jax.nn.softmax(logits[0]), feats[0]

    return jax.lax.map(one, x, batch_size=min(int(chunk), x.shape[0]))


class RealStats(NamedTuple):
    """What generated images are compared with: the true label histogram ``[C]`` (of the
    training labels) and the Gaussian fit (``mu [F]``, ``cov [F, F]``) of the classifier's
    features of held-out real images."""

    true_hist: jax.Array
    mu: jax.Array
    cov: jax.Array


def reference_stats(model: Model, params: Any, x_heldout: Any, train_labels: Any,
                    num_classes: int = 10) -> RealStats:
    """:class:`RealStats` of held-out images ``x_heldout`` and the training labels."""
    _, feats = jax.jit(lambda p, x: probs_and_features(model, p, x))(params, x_heldout)
    hist = np.bincount(np.asarray(train_labels).reshape(-1), minlength=num_classes)
    mu, cov = metrics.gaussian_fit(feats)
    return RealStats(jnp.asarray(hist / hist.sum(), jnp.float32), mu, cov)


def image_scores(model: Model, params: Any, x: jax.Array, sizes: Sequence[int],
                 ref: RealStats) -> dict:
    """``{"inception_score_n", "label_kl_n", "fid_n"}`` for every ``n`` in ``sizes``,
    each from the first ``n`` images of ``x [N, H, W, C]`` (``N >= max(sizes)``); pure and
    jit-able. IS: ``exp(E KL(p(y|x) || p(y)))``; label KL: ``KL(generated argmax
    histogram || true histogram)``; FID: Frechet distance of the features' Gaussian fit to
    ``ref``'s (square roots by symmetric eigendecomposition)."""
    probs, feats = probs_and_features(model, params, x[:max(sizes)])
    out = {}
    for n in sizes:
        p, f = probs[:n], feats[:n]
        out[f"inception_score_{n}"] = metrics.inception_score(p)
        out[f"label_kl_{n}"] = metrics.label_kl(p, ref.true_hist)
        out[f"fid_{n}"] = metrics.frechet_distance(*metrics.gaussian_fit(f), ref.mu, ref.cov)
    return out


class ClassifierFit(NamedTuple):
    """A trained domain classifier: ``params`` (one network), its accuracy on the held-out
    split, and the wall-clock seconds of compiling and training it."""

    params: Any
    test_accuracy: float
    seconds: float


def _fit(model: Model, steps: int, batch_size: int, learning_rate: float, key, data):
    """The classifier's whole training and held-out accuracy as one pure function (a
    ``lax.scan`` over Adam steps; batch ``t`` from ``fold_in(fold_in(key, 1), t)``)."""
    opt = optax.adam(learning_rate)
    params = model.init(jax.random.fold_in(key, 0))
    k_data = jax.random.fold_in(key, 1)

    def body(carry, t):
        params, state = carry
        idx = jax.random.randint(jax.random.fold_in(k_data, t), (batch_size,), 0,
                                 data["x"].shape[0])
        loss, grads = jax.value_and_grad(model.loss)(params, (data["x"][idx], data["y"][idx]))
        updates, state = opt.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), loss

    (params, _), losses = jax.lax.scan(body, (params, opt.init(params)), jnp.arange(steps))
    probs, _ = probs_and_features(model, params, data["x_test"])
    acc = jnp.mean(jnp.argmax(probs, -1) == data["y_test"])
    return params, acc, losses


def fit_classifier(model: Model, train: tuple, test: tuple, *, steps: int, batch_size: int,
                   key: Any, learning_rate: float = 1e-3) -> ClassifierFit:
    """Train ``model`` on ``train = (x, y)`` with Adam (batches drawn with replacement) and
    measure its accuracy on ``test = (x, y)``, in ONE jitted program (a ``lax.scan``).

    This is data preparation, not a study: one network, trained once, so it is a plain
    jitted function rather than a sweep of the core (whose health monitor at every step
    would cost more than the training itself on a CPU). Compiled with XLA's default
    optimization level: at level 0 the convolutions inside the scan ran about 30x slower
    on a CPU. Raises ValueError when the loss went non-finite."""
    steps = check_int("classifier_steps", steps)
    batch_size = check_int("classifier_batch", batch_size)
    t0 = time.perf_counter()
    data = {"x": jnp.asarray(train[0], jnp.float32), "y": jnp.asarray(train[1], jnp.int32),
            "x_test": jnp.asarray(test[0], jnp.float32),
            "y_test": jnp.asarray(test[1], jnp.int32)}
    fn = jax.jit(functools.partial(_fit, model, steps, batch_size, float(learning_rate)))
    params, acc, losses = fn(as_key("key", key), data)
    if not np.all(np.isfinite(np.asarray(losses))):
        raise ValueError("the domain classifier's training loss went non-finite")
    return ClassifierFit(params, float(acc), time.perf_counter() - t0)


__all__ = ["ClassifierFit", "RealStats", "domain_classifier", "fit_classifier",
           "image_scores", "probs_and_features", "reference_stats"]
