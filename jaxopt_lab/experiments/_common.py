"""Small helpers shared by the experiments: statistics over seeds, the summary's
non-finite seeds, the ``Results`` of an experiment, and a probe that carries a piece of
the optimizer state out of :func:`jaxopt_lab.compare.train` (which returns parameters,
not optimizer states).

Training itself always goes through the sweep core (:func:`jaxopt_lab.compare.train`,
:func:`jaxopt_lab.compare.run`, :func:`jaxopt_lab.compare.sweep`); run directories are
written by :meth:`jaxopt_lab.compare.Results.save` only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxopt_lab.compare import Results, stats, store

#: Name of the probe subtree in probed parameters (see :func:`probed`).
MODEL, PROBE = "model", "probe"


def median_fired(first_steps: Any) -> float:
    """Median of the first-fired steps that fired (>= 0); -1.0 if none fired."""
    a = np.asarray(first_steps).reshape(-1)
    a = a[a >= 0]
    return float(np.median(a)) if a.size else -1.0


def median_ci(x: Any, key: Any) -> dict[str, Any]:
    """``{"median", "ci"}`` of per-seed values; NaN (a diverged seed) counts as ``+inf``
    (worst), never dropped, so a median over diverged seeds is ``inf``, not hidden."""
    x = np.asarray(x, np.float64).reshape(-1)
    lo, hi = stats.bootstrap_median_ci(x, key)
    return {"median": stats.median_inf(x), "ci": [lo, hi]}


def rate(flags: Any) -> dict[str, Any]:
    """``{"rate", "ci"}``: share of seeds where ``flags`` is true, with its 95% Wilson interval."""
    f = np.asarray(flags, bool).reshape(-1)
    lo, hi = stats.wilson_interval(int(f.sum()), int(f.size))
    return {"rate": float(f.mean()), "ci": [lo, hi]}


def seeds_where(flags: Any) -> list[int]:
    """Seed indices where ``flags`` (``[S]``) is true."""
    return [int(i) for i in np.nonzero(np.asarray(flags, bool).reshape(-1))[0]]


def results(
    config: Any,
    variants: Sequence[str],
    metrics: dict[str, dict[str, Any]],
    curves: dict[str, dict[str, Any]],
    summary: dict[str, Any],
    *,
    compile_seconds: float,
    run_seconds: float,
    hparams: dict[str, list[dict]] | None = None,
    **meta: Any,
) -> Results:
    """An experiment's :class:`~jaxopt_lab.compare.Results` (``group_column="variant"``).

    ``metrics[v][name]`` / ``curves[v][name]`` are per-seed arrays ``[S, ...]``; they get
    the leading hyperparameter axis ``[1, S, ...]`` here. ``summary`` gains
    ``"nonfinite_seeds": {variant: [seed indices]}`` from each variant's ``nonfinite``.
    """
    variants = list(variants)
    m = {v: {k: np.asarray(a)[None] for k, a in metrics[v].items()} for v in variants}
    c = {v: {k: np.asarray(a)[None] for k, a in curves.get(v, {}).items()} for v in variants}
    summary = dict(summary)
    summary["nonfinite_seeds"] = {v: seeds_where(metrics[v]["nonfinite"]) for v in variants}
    return Results(
        optimizers=variants,
        hparams=hparams or {v: [{}] for v in variants},
        metrics=m,
        curves={v: cv for v, cv in c.items() if cv},
        summary=store.jsonable(summary),
        group_column="variant",
        meta=store.make_meta(
            config,
            key=jax.random.key(config.seed),
            compile_seconds=compile_seconds,
            run_seconds=run_seconds,
            **meta,
        ),
    )


# --------------------------------------------------------------------------- state probe
def probed(init: Callable, loss: Callable, probe_init: Callable[[Any], Any]):
    """Parameters ``{"model": params, "probe": probe_init(params)}`` for :func:`with_probe`.

    Returns ``(init, loss)`` over the probed parameters: the loss sees only the model (so
    the probe gets zero gradient; its return value, activations included, passes through
    unchanged). Use ``layer_order=probe_layers(model.layers)``.
    """
    def init2(key):
        p = init(key)
        return {MODEL: p, PROBE: probe_init(p)}

    def loss2(params, batch):
        return loss(params[MODEL], batch)

    return init2, loss2


def probe_layers(layers: Sequence[str]) -> tuple[str, ...]:
    """``layer_order`` of probed parameters (the model's layers under ``"model/"``)."""
    return tuple(f"{MODEL}/{name}" for name in layers)


def with_probe(opt: optax.GradientTransformation,
               read: Callable[[Any], Any] | None = None) -> optax.GradientTransformationExtraArgs:
    """Run ``opt`` on the ``"model"`` part of probed parameters and set the ``"probe"`` part
    to ``read(opt_state)`` after every step (``read=None``: the probe stays as it is).

    :func:`jaxopt_lab.compare.train` returns final parameters (to ``evaluate`` and
    ``keep_params``) but not the optimizer state; this carries a piece of the state (the
    weight EMA, the rollback count) out through the parameters. The probe's update is
    ``read(new_state) - probe``, so after ``optax.apply_updates`` the probe equals
    ``read(new_state)`` up to one rounding. Only the ``value`` extra argument reaches
    ``opt`` (enough for the rollback guard; not for second-order steps).
    """
    inner = optax.with_extra_args_support(opt)

    def init_fn(params):
        return inner.init(params[MODEL])

    def update_fn(updates, state, params=None, **extra):
        if params is None:
            raise ValueError("with_probe needs params in update(updates, state, params)")
        # only the loss value is passed on: the functions of the probed params (value_fn,
        # hvp_fn, ...) do not apply to the model part alone
        value = {"value": extra["value"]} if "value" in extra else {}
        u, state = inner.update(updates[MODEL], state, params[MODEL], **value)
        probe = params[PROBE]
        if read is None:
            du = jax.tree.map(jnp.zeros_like, probe)
        else:
            du = jax.tree.map(lambda new, old: jnp.asarray(new, old.dtype) - old,
                              read(state), probe)
        return {MODEL: u, PROBE: du}, state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)

