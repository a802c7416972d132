"""Generators and discriminators of the mode-collapse lab, and spectral normalization.

Every builder returns a :class:`~jaxopt_lab.models.core.Model` (pure ``init(key)`` /
``apply(params, x)`` over Flax NNX modules); its ``loss`` is unused by GANs (the losses
live in :mod:`jaxopt_lab.gan.losses`). Batch norm always uses the statistics of the
batch it is given (training mode, see :func:`~jaxopt_lab.models.core.make_model`).

* :func:`mlp_generator` / :func:`mlp_discriminator`: the 2-D mixture networks (PacGAN's
  and VEEGAN's setups) with the discriminator-side remedies as options: packing (PacGAN),
  minibatch discrimination (Salimans 2016), minibatch standard deviation (Karras 2018),
  maxout units.
* :func:`conv_generator` / :func:`conv_discriminator`: the image protocol's networks
  (three transposed convolutions with LeakyReLU and tanh; two 5x5 stride-2 convolutions
  with 64 and 128 filters).
* :func:`spectral_norm_init` / :func:`spectral_normalize`: spectral normalization as a
  pure reparametrization of the discriminator's kernels, the power-iteration vectors
  carried in the caller's state (one power-iteration step per update).

References:
  Lin, Khetan, Fanti & Oh, 2018. PacGAN: The power of two samples in generative
  adversarial networks.
  Salimans, Goodfellow, Zaremba, Cheung, Radford & Chen, 2016. Improved techniques for
  training GANs.
  Karras, Aila, Laine & Lehtinen, 2018. Progressive growing of GANs for improved quality,
  stability, and variation.
  Miyato, Kataoka, Koyama & Yoshida, 2018. Spectral normalization for generative
  adversarial networks.
  Radford, Metz & Chintala, 2016. Unsupervised representation learning with deep
  convolutional generative adversarial networks.
  Goodfellow, Warde-Farley, Mirza, Courville & Bengio, 2013. Maxout networks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxopt_lab._validation import check_choice, check_int, check_positive
from jaxopt_lab.models.conv import transpose_padding, vmappable_conv
from jaxopt_lab.models.core import ACTIVATIONS, Model, kernel_initializer, make_model

_LEAKY = 0.2  # LeakyReLU slope of the DCGAN-style networks (Radford et al. 2016)


def _check_widths(name: str, widths: Sequence[int]) -> tuple[int, ...]:
    if not isinstance(widths, Sequence) or isinstance(widths, str) or not widths:
        raise ValueError(f"{name} must be a non-empty sequence of ints, got {widths!r}")
    return tuple(check_int(name, w) for w in widths)


class _Linear(nnx.Module):
    def __init__(self, din, dout, *, init, init_scale, rngs):
        self.kernel = nnx.Param(kernel_initializer(init, init_scale)(rngs.params(), (din, dout)))
        self.bias = nnx.Param(jnp.zeros((dout,), jnp.float32))

    def __call__(self, x):
        return x @ self.kernel[...] + self.bias[...]


class _MLPGenerator(nnx.Module):
    def __init__(self, latent_dim, hidden, out_dim, *, activation, batch_norm, init,
                 init_scale, rngs):
        self.activation = activation
        widths = (latent_dim, *hidden)
        self.num_hidden = len(hidden)
        for i in range(len(hidden)):
            setattr(self, f"layers_{i}", _Linear(widths[i], widths[i + 1], init=init,
                                                 init_scale=init_scale, rngs=rngs))
            if batch_norm:
                setattr(self, f"norm_{i}", nnx.BatchNorm(widths[i + 1],
                                                         use_running_average=False, rngs=rngs))
        self.batch_norm = batch_norm
        self.out = _Linear(widths[-1], out_dim, init=init, init_scale=init_scale, rngs=rngs)

    def __call__(self, z, return_activations=False):
        act = ACTIVATIONS[self.activation]
        h, acts = z, []
        for i in range(self.num_hidden):
            h = getattr(self, f"layers_{i}")(h)
            if self.batch_norm:
                h = getattr(self, f"norm_{i}")(h)
            h = act(h)
            acts.append(h)
        out = self.out(h)
        return (out, tuple(acts)) if return_activations else out


def mlp_generator(latent_dim: int, out_dim: int, hidden: Sequence[int] = (128, 128), *,
                  activation: str = "relu", batch_norm: bool = False, init: str = "xavier",
                  init_scale: float = 1.0) -> Model:
    """MLP generator ``z [n, latent_dim] -> x [n, out_dim]`` (linear output).

    PacGAN's 2-D setup: ``hidden=(400,)*4, activation="relu", batch_norm=True``; VEEGAN's:
    ``hidden=(128, 128), activation="tanh", init="orthogonal", init_scale=1.4``.
    """
    latent_dim = check_int("latent_dim", latent_dim)
    out_dim = check_int("out_dim", out_dim)
    hidden = _check_widths("hidden", hidden)
    check_choice("activation", activation, tuple(ACTIVATIONS))
    check_positive("init_scale", init_scale)

    def build(rngs):
        return _MLPGenerator(latent_dim, hidden, out_dim, activation=activation,
                             batch_norm=bool(batch_norm), init=init, init_scale=init_scale,
                             rngs=rngs)

    return make_model(build, loss="mse", name="mlp_generator")


class _MinibatchDiscrimination(nnx.Module):
    """Salimans et al. (2016): ``o_b(x_i) = sum_j exp(-||M_i,b - M_j,b||_1)``, ``M = h T``."""

    def __init__(self, din, num_kernels, kernel_dim, *, rngs):
        self.num_kernels, self.kernel_dim = num_kernels, kernel_dim
        self.tensor = nnx.Param(0.1 * jax.random.normal(
            rngs.params(), (din * num_kernels * kernel_dim,)).reshape(
                din, num_kernels * kernel_dim))

    def __call__(self, h):
        m = (h @ self.tensor[...]).reshape(h.shape[0], self.num_kernels, self.kernel_dim)
        l1 = jnp.sum(jnp.abs(m[:, None] - m[None, :]), axis=-1)  # [n, n, B]
        o = jnp.sum(jnp.exp(-l1), axis=1) - 1.0  # exclude the sample itself
        return jnp.concatenate([h, o], axis=-1)


def minibatch_stddev(h: jax.Array) -> jax.Array:
    """Append the batch's mean feature standard deviation as one extra feature (Karras
    et al. 2018): ``h [n, f] -> [n, f + 1]``."""
    std = jnp.sqrt(jnp.var(h, axis=0) + 1e-8)
    return jnp.concatenate([h, jnp.broadcast_to(jnp.mean(std), (h.shape[0], 1))], axis=-1)


class _MLPDiscriminator(nnx.Module):
    def __init__(self, in_dim, hidden, *, activation, maxout, pack, mbd, mbstd, init,
                 init_scale, rngs):
        self.activation, self.maxout, self.pack, self.mbstd = activation, maxout, pack, mbstd
        widths = (in_dim * pack, *hidden)
        self.num_hidden = len(hidden)
        for i in range(len(hidden)):
            setattr(self, f"layers_{i}", _Linear(widths[i], widths[i + 1] * maxout, init=init,
                                                 init_scale=init_scale, rngs=rngs))
        last = widths[-1]
        self.mbd = (_MinibatchDiscrimination(last, mbd[0], mbd[1], rngs=rngs) if mbd
                    else None)
        if mbd:
            last += mbd[0]
        if mbstd:
            last += 1
        self.out = _Linear(last, 1, init=init, init_scale=init_scale, rngs=rngs)

    def __call__(self, x, return_activations=False):
        act = ACTIVATIONS[self.activation]
        h = x.reshape(x.shape[0] // self.pack, -1)  # PacGAN: m samples -> one input
        acts = []
        for i in range(self.num_hidden):
            h = getattr(self, f"layers_{i}")(h)
            if self.maxout > 1:
                h = jnp.max(h.reshape(h.shape[0], -1, self.maxout), axis=-1)
            else:
                h = act(h)
            acts.append(h)
        if self.mbd is not None:
            h = self.mbd(h)
        if self.mbstd:
            h = minibatch_stddev(h)
        out = self.out(h)
        return (out, tuple(acts)) if return_activations else out


def mlp_discriminator(in_dim: int, hidden: Sequence[int] = (128, 128), *,
                      activation: str = "relu", maxout: int = 1, pack: int = 1,
                      minibatch_kernels: int = 0, minibatch_kernel_dim: int = 5,
                      minibatch_stddev: bool = False, init: str = "xavier",
                      init_scale: float = 1.0) -> Model:
    """MLP discriminator ``x [n, in_dim] -> logits [n // pack, 1]``.

    Args:
      in_dim: data dimension.
      hidden: hidden widths.
      activation: hidden activation (ignored with ``maxout > 1``).
      maxout: pieces of each maxout unit (Goodfellow et al. 2013; PacGAN's D uses 5).
      pack: PacGAN's packing degree m: ``m`` consecutive samples are concatenated into one
        input of dimension ``m * in_dim`` (Lin et al. 2018); the batch must be a multiple.
      minibatch_kernels: minibatch-discrimination kernels B (0: off) with kernel dimension
        ``minibatch_kernel_dim`` C, after the last hidden layer (Salimans et al. 2016).
      minibatch_stddev: append the minibatch standard deviation feature after the last
        hidden layer (Karras et al. 2018).
      init, init_scale: kernel initialization (``kernel_initializer``).
    """
    in_dim = check_int("in_dim", in_dim)
    hidden = _check_widths("hidden", hidden)
    check_choice("activation", activation, tuple(ACTIVATIONS))
    maxout = check_int("maxout", maxout)
    pack = check_int("pack", pack)
    minibatch_kernels = check_int("minibatch_kernels", minibatch_kernels, minimum=0)
    minibatch_kernel_dim = check_int("minibatch_kernel_dim", minibatch_kernel_dim)
    check_positive("init_scale", init_scale)
    mbd = (minibatch_kernels, minibatch_kernel_dim) if minibatch_kernels else None

    def build(rngs):
        return _MLPDiscriminator(in_dim, hidden, activation=activation, maxout=maxout,
                                 pack=pack, mbd=mbd, mbstd=bool(minibatch_stddev), init=init,
                                 init_scale=init_scale, rngs=rngs)

    return make_model(build, loss="mse", name="mlp_discriminator")


def _conv(c_in, c_out, *, strides=1, transpose=False, use_bias=True, kernel_init, rngs):
    """A 5x5 ``SAME`` convolution (``transpose``: the transposed convolution of
    ``nnx.ConvTranspose``, i.e. the input dilated by ``strides``) through
    :func:`~jaxopt_lab.models.conv.vmappable_conv` (vmappable over seeds and learning rates);
    parameters ``kernel [5, 5, c_in, c_out]`` and ``bias``."""
    if transpose:
        pad = [transpose_padding(5, strides)] * 2
        return nnx.Conv(c_in, c_out, (5, 5), strides=(1, 1), input_dilation=(strides, strides),
                        padding=pad, use_bias=use_bias, kernel_init=kernel_init,
                        conv_general_dilated=vmappable_conv, rngs=rngs)
    return nnx.Conv(c_in, c_out, (5, 5), strides=(strides, strides), padding="SAME",
                    use_bias=use_bias, kernel_init=kernel_init,
                    conv_general_dilated=vmappable_conv, rngs=rngs)


class _ConvGenerator(nnx.Module):
    def __init__(self, latent_dim, image_shape, *, rngs):
        h, w, c = image_shape
        self.h4, self.w4 = h // 4, w // 4
        init = nnx.initializers.normal(0.02)
        self.dense = nnx.Linear(latent_dim, self.h4 * self.w4 * 128, use_bias=False,
                                kernel_init=init, rngs=rngs)
        self.norm0 = nnx.BatchNorm(self.h4 * self.w4 * 128, use_running_average=False,
                                   rngs=rngs)
        self.conv1 = _conv(128, 64, strides=1, transpose=True, use_bias=False,
                           kernel_init=init, rngs=rngs)
        self.norm1 = nnx.BatchNorm(64, use_running_average=False, rngs=rngs)
        self.conv2 = _conv(64, 32, strides=2, transpose=True, use_bias=False,
                           kernel_init=init, rngs=rngs)
        self.norm2 = nnx.BatchNorm(32, use_running_average=False, rngs=rngs)
        self.conv3 = _conv(32, c, strides=2, transpose=True, kernel_init=init, rngs=rngs)

    def __call__(self, z, return_activations=False):
        lrelu = lambda v: jax.nn.leaky_relu(v, _LEAKY)  # noqa: E731
        a0 = lrelu(self.norm0(self.dense(z))).reshape(z.shape[0], self.h4, self.w4, 128)
        a1 = lrelu(self.norm1(self.conv1(a0)))
        a2 = lrelu(self.norm2(self.conv2(a1)))
        out = jnp.tanh(self.conv3(a2))
        return (out, (a0, a1, a2)) if return_activations else out


def conv_generator(latent_dim: int = 100, image_shape: tuple[int, int, int] = (28, 28, 1)
                   ) -> Model:
    """DCGAN-style generator of the image protocol: dense -> 3 transposed 5x5 convolutions
    (stride 1, 2, 2; 64, 32, C filters) with batch norm and LeakyReLU(0.2), tanh output in
    [-1, 1]; ``z [n, latent_dim] -> x [n, H, W, C]`` (H, W multiples of 4)."""
    latent_dim = check_int("latent_dim", latent_dim)
    if (not isinstance(image_shape, tuple) or len(image_shape) != 3
            or image_shape[0] % 4 or image_shape[1] % 4):
        raise ValueError(f"image_shape must be (H, W, C) with H, W multiples of 4, got "
                         f"{image_shape!r}")
    return make_model(lambda rngs: _ConvGenerator(latent_dim, image_shape, rngs=rngs),
                      loss="mse", name="conv_generator")


class _ConvDiscriminator(nnx.Module):
    def __init__(self, image_shape, *, rngs):
        h, w, c = image_shape
        init = nnx.initializers.normal(0.02)
        self.conv1 = _conv(c, 64, strides=2, kernel_init=init, rngs=rngs)
        self.conv2 = _conv(64, 128, strides=2, kernel_init=init, rngs=rngs)
        self.out = nnx.Linear(-(-h // 4) * -(-w // 4) * 128, 1, kernel_init=init, rngs=rngs)

    def __call__(self, x, return_activations=False):
        lrelu = lambda v: jax.nn.leaky_relu(v, _LEAKY)  # noqa: E731
        a1 = lrelu(self.conv1(x))
        a2 = lrelu(self.conv2(a1))
        out = self.out(a2.reshape(x.shape[0], -1))
        return (out, (a1, a2)) if return_activations else out


def conv_discriminator(image_shape: tuple[int, int, int] = (28, 28, 1)) -> Model:
    """The image protocol's discriminator: two 5x5 stride-2 convolutions (64, 128 filters)
    with LeakyReLU(0.2) and a linear logit; ``x [n, H, W, C] -> [n, 1]`` (no dropout)."""
    if not isinstance(image_shape, tuple) or len(image_shape) != 3:
        raise ValueError(f"image_shape must be (H, W, C), got {image_shape!r}")
    return make_model(lambda rngs: _ConvDiscriminator(image_shape, rngs=rngs), loss="mse",
                      name="conv_discriminator")


# --------------------------------------------------------------------------- spectral norm


def _is_kernel(path, leaf) -> bool:
    return jnp.ndim(leaf) >= 2 and getattr(path[-1], "key", None) in ("kernel", "tensor")


def spectral_norm_init(params: Any, key: jax.Array) -> Any:
    """Power-iteration vectors for :func:`spectral_normalize`: a unit vector ``u [out]`` for
    every kernel (leaves named ``kernel``/``tensor`` with >= 2 axes; reshaped to
    ``[prod(leading), out]``), ``None`` for every other leaf."""
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    keys = iter(jax.random.split(key, max(len(leaves), 1)))

    def f(path, leaf):
        k = next(keys)
        if not _is_kernel(path, leaf):
            return None
        u = jax.random.normal(k, (leaf.shape[-1],), jnp.float32)
        return u / jnp.linalg.norm(u)

    return jax.tree_util.tree_map_with_path(f, params)


def spectral_normalize(params: Any, u: Any, *, eps: float = 1e-12) -> tuple[Any, Any]:
    """Divide every kernel by its largest singular value, estimated with ONE power
    iteration from the carried vector ``u`` (Miyato et al. 2018, Algorithm 1).

    ``W [.., out] -> W_mat [m, out]``; ``v = normalize(W_mat u)``, ``u' = normalize(W_mat^T
    v)``, ``sigma = v^T W_mat u'``; the gradient flows through ``W`` only (``u'``, ``v``
    are constants, as in the paper). Returns ``(normalized params, u')``: the caller
    carries ``u'`` to the next update, so the estimate sharpens over training.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> p = {"kernel": jnp.diag(jnp.array([3.0, 1.0]))}
      >>> u = spectral_norm_init(p, jax.random.key(0))
      >>> for _ in range(20):
      ...     q, u = spectral_normalize(p, u)
      >>> round(float(q["kernel"][0, 0]), 3)
      1.0
    """
    flat_p, treedef = jax.tree_util.tree_flatten_with_path(params)
    flat_u = treedef.flatten_up_to(u)
    out_p, out_u = [], []
    for (path, w), uu in zip(flat_p, flat_u, strict=True):
        if uu is None or not _is_kernel(path, w):
            out_p.append(w)
            out_u.append(uu)
            continue
        mat = w.reshape(-1, w.shape[-1])
        uu = jax.lax.stop_gradient(uu)
        v = mat @ uu
        v = jax.lax.stop_gradient(v / (jnp.linalg.norm(v) + eps))
        u_new = mat.T @ v
        u_new = jax.lax.stop_gradient(u_new / (jnp.linalg.norm(u_new) + eps))
        sigma = v @ mat @ u_new
        out_p.append(w / sigma)
        out_u.append(u_new)
    return treedef.unflatten(out_p), treedef.unflatten(out_u)


__all__ = [
    "conv_discriminator",
    "conv_generator",
    "minibatch_stddev",
    "mlp_discriminator",
    "mlp_generator",
    "spectral_norm_init",
    "spectral_normalize",
]
