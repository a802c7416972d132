"""Convolution as image patches times a matrix: the convolution of the lab's conv nets.

:func:`patch_conv` has the signature of ``lax.conv_general_dilated`` (pass it to
``nnx.Conv(conv_general_dilated=...)``); :func:`transpose_padding` gives the padding with
which ``nnx.Conv(input_dilation=s, padding=...)`` equals ``nnx.ConvTranspose(strides=s,
padding="SAME")``.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax


def patch_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
               dimension_numbers=None, feature_group_count=1, precision=None, **kwargs):
    """``lax.conv_general_dilated`` (same arguments, ``feature_group_count`` 1, kernel
    ``HWIO``) computed as image patches (:func:`jax.lax.conv_general_dilated_patches`, a
    convolution with a constant identity kernel, exact at ``HIGHEST`` precision) times the
    kernel reshaped to ``[C_in * kh * kw, C_out]``.

    Why: the gradient of a convolution with respect to its kernel is itself a (grouped)
    convolution, and vmapping it over seeds and then over a traced learning-rate grid,
    with the input batched in the kernel only, has no batching rule in JAX 0.10
    (``NotImplementedError`` in ``_conv_general_dilated_batch_rule`` under the sweep
    core's sharded lowering). Here the kernel enters only through a matrix product, whose
    batching is plain, so the conv networks run many seeds in one vectorised program.
    Memory: the patches are ``kh * kw`` times the input (``lhs_dilation`` zeros included).
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


def transpose_padding(kernel: int, stride: int) -> tuple[int, int]:
    """Before/after padding of ``lax.conv_transpose(..., padding="SAME")`` for one spatial
    dimension (the rule of ``jax._src.lax.convolution._conv_transpose_padding``)."""
    total = kernel + stride - 2
    before = kernel - 1 if stride > kernel - 1 else -(-total // 2)
    return before, total - before


__all__ = ["patch_conv", "transpose_padding"]
