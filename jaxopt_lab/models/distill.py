"""Knowledge distillation loss (the "learning without forgetting" regulariser)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxopt_lab._validation import check_positive

__all__ = ["distillation_loss", "masked_logits"]

#: Logit given to masked-out classes (finite: no NaN in gradients or softmax).
MASKED = -1e9


def masked_logits(logits: jax.Array, mask: jax.Array) -> jax.Array:
    """``logits`` with the classes where ``mask`` is False set to a very negative value
    (a multi-head / task-incremental output: only the task's classes compete)."""
    return jnp.where(mask, logits, jnp.asarray(MASKED, logits.dtype))


def distillation_loss(student_logits: jax.Array, teacher_logits: jax.Array,
                      mask: jax.Array | None = None, *, temperature: float = 2.0) -> jax.Array:
    """Mean cross-entropy between the teacher's and the student's softened predictions.

    ``T^2 * mean_i sum_c softmax(t_i / T)_c * -log softmax(s_i / T)_c`` over the classes
    where ``mask`` is True (others are excluded from both softmaxes). The ``T^2`` factor
    keeps the gradient scale independent of ``T`` (Hinton et al. 2015). The teacher is
    not differentiated (``stop_gradient``).

    Args:
      student_logits: ``[B, C]``.
      teacher_logits: ``[B, C]`` (e.g. the model before the current task).
      mask: optional ``[C]`` or ``[B, C]`` bool of the classes distilled.
      temperature: ``T > 0``.

    Returns:
      Scalar loss.

    References:
      Hinton, Vinyals & Dean (2015), "Distilling the Knowledge in a Neural Network".
      Li & Hoiem (2016), "Learning without Forgetting".
    """
    check_positive("temperature", temperature)
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"teacher_logits must have the shape of student_logits "
                         f"{student_logits.shape}, got {teacher_logits.shape}")
    s, t = student_logits / temperature, jax.lax.stop_gradient(teacher_logits) / temperature
    if mask is not None:
        mask = jnp.broadcast_to(jnp.asarray(mask, bool), s.shape)
        s, t = masked_logits(s, mask), masked_logits(t, mask)
    p = jax.nn.softmax(t, axis=-1)
    logq = jax.nn.log_softmax(s, axis=-1)
    terms = p * logq
    if mask is not None:
        terms = jnp.where(mask, terms, 0.0)
    return -(temperature ** 2) * jnp.mean(jnp.sum(terms, axis=-1))
