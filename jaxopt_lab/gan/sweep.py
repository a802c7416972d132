"""The GAN front-end of the sweep core: one seed's whole GAN run as a
:class:`~jaxopt_lab.compare.Trial`, and the :class:`~jaxopt_lab.compare.Results` of
several remedies.

Per seed ``i`` (``key_i = fold_in(key, i)``, given by the core): the state is
:func:`~jaxopt_lab.gan.step.init_state` from ``fold_in(key_i, 0)``; step ``t`` uses the
key ``fold_in(fold_in(key_i, 1), t)``; the evaluation after block ``b`` draws its
``num_eval`` latents from ``fold_in(fold_in(key_i, 2), b)``. Training is a ``lax.scan``
over ``steps // eval_every`` blocks, each a ``lax.scan`` of ``eval_every`` steps
followed by ``evaluate(samples, state, inputs)``, so curves over training cost no host round
trip. The core vmaps the run over seeds and the learning-rate grid (traced: one compiled
program per optimizer family), chunks, shards and caches; this module adds no loop.

How the two players get optimizers: each ``optimizers`` entry is an ordinary optax
transform (or ``(factory, grid)``) of the core; BOTH players use it, each with its own
``opt.init`` state; :class:`~jaxopt_lab.gan.step.GANSpec`'s ``d_lr_scale`` / ``lr_scale``
set two-timescale and lowered rates while the learning rate stays traced.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxopt_lab._validation import check_int
from jaxopt_lab.compare import Results, core
from jaxopt_lab.gan.step import GANNets, GANSpec, check_nets, gan_step, init_state


def check_learning_rates(optimizers: Mapping[str, Any]) -> None:
    """ValueError naming ``learning_rate`` when a grid's learning rate is not finite and
    positive (before anything compiles)."""
    for name, entry in optimizers.items():
        if isinstance(entry, tuple | list) and len(entry) == 2 and isinstance(entry[1], Mapping):
            vals = entry[1].get("learning_rate", [])
            vals = list(np.ravel(vals)) if not isinstance(vals, list | tuple) else list(vals)
            for v in vals:
                ok = isinstance(v, int | float | np.number) and not isinstance(v, bool)
                if not ok or not math.isfinite(float(v)) or float(v) <= 0:
                    raise ValueError(f"learning_rate of optimizers[{name!r}] must be finite "
                                     f"and > 0, got {v!r}")


def make_trial(spec: GANSpec, nets: GANNets, *, steps: int, eval_every: int,
               sample_real: Callable[[Any, jax.Array, int], jax.Array],
               evaluate: Callable[[jax.Array, Any, Any], dict], inputs: Any = None,
               num_eval: int = 2500, num_keep: int = 0, static: Any = None) -> core.Trial:
    """The per-seed GAN run for :func:`jaxopt_lab.compare.sweep`.

    Args:
      spec, nets: the step's configuration and networks (checked with ``check_nets``).
      steps: generator steps (a multiple of ``eval_every``).
      eval_every: steps between evaluations (metrics inside the program).
      sample_real: ``sample_real(inputs, key, n) -> [n, *data_shape]`` (pure).
      evaluate: ``evaluate(samples [num_eval, *data_shape], state, inputs) -> dict of
        scalars`` (``state``: the :class:`~jaxopt_lab.gan.step.GANState` after the block).
      inputs: arrays shared by every seed (data, mixture centers), passed as arguments.
      num_eval: generated samples per evaluation (2500 in the mixture protocols).
      num_keep: final generated samples returned per seed (for scatter plots / grids).
      static: extra hashable description of what ``sample_real``/``evaluate`` close over.

    Returns:
      A :class:`~jaxopt_lab.compare.Trial` whose outputs are ``{"final": {metric: [],
      "d_loss", "g_loss", "nonfinite"}, "curves": {metric: [T]}, "samples": [num_keep,
      ...]}`` (``T = steps // eval_every``; ``samples`` only with ``num_keep``).
    """
    steps = check_int("steps", steps)
    eval_every = check_int("eval_every", eval_every)
    num_eval = check_int("num_eval", num_eval, minimum=2)
    num_keep = check_int("num_keep", num_keep, minimum=0)
    if steps % eval_every:
        raise ValueError(f"steps={steps} must be a multiple of eval_every={eval_every}")
    check_nets(nets, spec)
    n_blocks = steps // eval_every

    def run(opt, key, index, row, inputs):
        del index, row
        state = init_state(spec, nets, opt, jax.random.fold_in(key, 0))
        k_train, k_eval = jax.random.fold_in(key, 1), jax.random.fold_in(key, 2)

        def real(k, n):
            return sample_real(inputs, k, n)

        def body(state, t):
            return gan_step(spec, nets, opt, state, jax.random.fold_in(k_train, t), real)

        def generate(state, k, n):
            return nets.g_apply(state.g_params, jax.random.normal(
                k, (n, nets.latent_dim), jnp.float32))

        def block(state, b):
            state, info = jax.lax.scan(body, state, b * eval_every + jnp.arange(eval_every))
            x = generate(state, jax.random.fold_in(k_eval, b), num_eval)
            ev = dict(evaluate(x, state, inputs))
            ev.update(d_loss=jnp.mean(info.d_loss), g_loss=jnp.mean(info.g_loss),
                      finite=jnp.all(info.finite))
            return state, ev

        state, curves = jax.lax.scan(block, state, jnp.arange(n_blocks))
        finite = curves.pop("finite")
        final = {k: v[-1] for k, v in curves.items()}
        final["nonfinite"] = ~jnp.all(finite)
        out = {"final": final, "curves": curves}
        if num_keep:
            out["samples"] = generate(state, jax.random.fold_in(k_eval, n_blocks),
                                      max(num_keep, 2))[:num_keep]
        return out

    return core.Trial(run, inputs=inputs,
                      static=("gan", spec, steps, eval_every, num_eval, num_keep, static))


def sweep(trial: core.Trial, optimizers: Mapping[str, Any], *, num_seeds: int, key: Any,
          **kwargs) -> core.SweepOutput:
    """:func:`jaxopt_lab.compare.sweep` of a GAN trial, learning rates checked first."""
    check_learning_rates(optimizers)
    return core.sweep(trial, optimizers, num_seeds=num_seeds, key=key, **kwargs)


def results_from_sweeps(sweeps: Mapping[str, core.SweepOutput], *, meta: dict | None = None,
                        summary: Any = None) -> tuple[Results, dict]:
    """Merge one sweep per remedy into :class:`~jaxopt_lab.compare.Results` (group column
    ``optimizer``; ``hparams`` rows ``{"remedy", **grid}`` in remedy-major order; metrics
    the trial's ``final`` ``[n_hparams, n_seeds]``; curves its ``curves``).

    Returns:
      ``(results, samples)``: ``samples[optimizer]`` is ``[n_hparams, n_seeds, ...]`` (or
      absent when the trial kept none).
    """
    names: list = []
    hparams: dict = {}
    metrics: dict = {}
    curves: dict = {}
    samples: dict = {}
    for remedy, sw in sweeps.items():
        for fam in sw.families:
            out = sw.outputs[fam.name]
            if fam.name not in hparams:
                names.append(fam.name)
                hparams[fam.name], metrics[fam.name], curves[fam.name] = [], [], []
            hparams[fam.name] += [{"remedy": remedy, **h} for h in fam.hparams]
            metrics[fam.name].append(out["final"])
            curves[fam.name].append(out["curves"])
            if "samples" in out:
                samples.setdefault(fam.name, []).append(out["samples"])

    def cat(parts):
        return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}

    res = Results(optimizers=names, hparams=hparams,
                  metrics={n: cat(metrics[n]) for n in names},
                  curves={n: cat(curves[n]) for n in names}, meta=dict(meta or {}),
                  summary=summary, group_column="optimizer")
    return res, {n: np.concatenate(v) for n, v in samples.items()}


__all__ = ["check_learning_rates", "make_trial", "results_from_sweeps", "sweep"]
