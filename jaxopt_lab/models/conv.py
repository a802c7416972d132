"""The convolution of the lab's conv nets: vmappable over seeds and traced hyperparameters.

Why: inside the sweep core a network's kernel is batched over seeds (inner vmap) and over
the traced learning-rate grid (outer vmap), while its input (a real data batch) is batched
over seeds only. The seed vmap turns ``lax.conv_general_dilated`` into a grouped
convolution, and JAX 0.10 has no batching rule for a grouped convolution whose kernel
alone is batched under the core's sharded lowering (``NotImplementedError`` in
``_conv_general_dilated_batch_rule``), in the forward pass and in the kernel gradient.

:func:`vmappable_conv` (the signature of ``lax.conv_general_dilated``; pass it to
``nnx.Conv(conv_general_dilated=...)``) takes one of two equal computations:

* :func:`patch_conv`: image patches times the kernel reshaped to a matrix; the kernel
  enters only through a matrix product, whose batching is plain. Faster on CPU (1.5x on
  the image GAN's 8x8 step), but the patches are ``kh * kw`` times the input.
* :func:`tied_conv`: lax's convolution with the input tied to the kernel's batch axes
  (``+ 0 * kernel[0]``), so both operands are batched on every axis and the batching
  rule that exists applies; no extra memory.

It takes the patches while they fit in :data:`MAX_PATCH_BYTES` (per unbatched call), the
tied convolution above (e.g. 10,000 generated 28x28 images: 25 GB of patches per seed).
:func:`transpose_padding` gives the padding with which ``nnx.Conv(input_dilation=s,
padding=...)`` equals ``nnx.ConvTranspose(strides=s, padding="SAME")``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

#: Largest patch tensor (bytes, per unbatched call) :func:`vmappable_conv` builds.
MAX_PATCH_BYTES = 64 * 2**20


def patch_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
               dimension_numbers=None, feature_group_count=1, precision=None, **kwargs):
    """``lax.conv_general_dilated`` (same arguments, ``feature_group_count`` 1, kernel
    ``HWIO``) computed as image patches (:func:`jax.lax.conv_general_dilated_patches`, a
    convolution with a constant identity kernel, exact at ``HIGHEST`` precision) times the
    kernel reshaped to ``[C_in * kh * kw, C_out]``.

    The kernel enters only through a matrix product, so vmapping over kernels needs no
    grouped convolution (see the module docstring). Memory: the patches are ``kh * kw``
    times the input (``lhs_dilation`` zeros included).
    ``out_sharding`` / ``preferred_element_type`` (``**kwargs``) are not used.
    """
    if feature_group_count != 1:
        raise ValueError(f"feature_group_count must be 1, got {feature_group_count}")
    if lhs.ndim != 4 or rhs.ndim != 4:
        raise ValueError(f"patch_conv takes 2-D convolutions (4-D operands), got lhs "
                         f"{lhs.shape} and rhs {rhs.shape}")
    dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    if dn.out_spec[1] != 3 or tuple(dn.rhs_spec[:2]) != (3, 2):
        raise ValueError("patch_conv needs channels-last outputs and an HWIO kernel, got "
                         f"dimension_numbers={dimension_numbers!r}")
    kh, kw, c_in, c_out = rhs.shape
    patches = lax.conv_general_dilated_patches(
        lhs, (kh, kw), window_strides, padding, lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
        precision=lax.Precision.HIGHEST)
    kernel = jnp.transpose(rhs, (2, 0, 1, 3)).reshape(c_in * kh * kw, c_out)
    return jnp.einsum("...k,ko->...o", patches, kernel, precision=precision)


def tied_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
              dimension_numbers=None, feature_group_count=1, precision=None, **kwargs):
    """``lax.conv_general_dilated`` with ``lhs`` tied to every batch axis of ``rhs``
    (``lhs + 0 * rhs[0]``: the value is unchanged for a finite kernel; a non-finite kernel
    makes the output non-finite, as the convolution itself would). Under vmap the kernel
    is then never batched alone (see the module docstring)."""
    lhs = lhs + jnp.zeros((), lhs.dtype) * rhs.reshape(-1)[0].astype(lhs.dtype)
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding,
                                    lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
                                    dimension_numbers=dimension_numbers,
                                    feature_group_count=feature_group_count,
                                    precision=precision, **kwargs)


def vmappable_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                   dimension_numbers=None, feature_group_count=1, precision=None,
                   **kwargs):
    """``lax.conv_general_dilated`` that vmaps over kernels: :func:`patch_conv` while its
    patches fit in :data:`MAX_PATCH_BYTES`, else :func:`tied_conv` (grouped convolutions
    always take :func:`tied_conv`)."""
    args = (lhs, rhs, window_strides, padding)
    kw = dict(lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation,
              dimension_numbers=dimension_numbers, feature_group_count=feature_group_count,
              precision=precision)
    if feature_group_count == 1 and lhs.ndim == 4 and rhs.ndim == 4:
        out = jax.eval_shape(lambda a, b: lax.conv_general_dilated(a, b, *args[2:], **kw),
                             lhs, rhs)
        dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
        c_out = out.shape[dn.out_spec[1]]
        patch_bytes = (math.prod(out.shape) // c_out * math.prod(rhs.shape) // c_out
                       * jnp.dtype(lhs.dtype).itemsize)
        if patch_bytes <= MAX_PATCH_BYTES:
            return patch_conv(*args, **kw)
    return tied_conv(*args, **kw, **kwargs)


def transpose_padding(kernel: int, stride: int) -> tuple[int, int]:
    """Before/after padding of ``lax.conv_transpose(..., padding="SAME")`` for one spatial
    dimension (the rule of ``jax._src.lax.convolution._conv_transpose_padding``)."""
    total = kernel + stride - 2
    before = kernel - 1 if stride > kernel - 1 else -(-total // 2)
    return before, total - before


__all__ = ["MAX_PATCH_BYTES", "patch_conv", "tied_conv", "transpose_padding", "vmappable_conv"]
