"""Contract tests run over every transform in jaxopt_lab.transforms.

Each row of ``TABLE`` is ``Entry(name, factory, kwargs, extra, inject)``:

* ``factory(**kwargs)`` builds the transform;
* ``extra(params, grads, value, step) -> dict`` gives the keyword extra args of update;
* ``inject`` names a numeric hyperparameter to pass through ``optax.inject_hyperparams``
  (``None`` if there is none worth injecting).

To add a transform, add one row. Second-order transforms are added when the package
exports them.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import FAST

from jaxopt_lab import transforms as T

STEPS = 3
SEEDS = 3
# Cheap XLA compiles: these tests check semantics, not speed (both sides of every
# comparison are compiled with the same options).


def loss(p):
    """Small non-separable objective on a two-leaf pytree."""
    w, b = p["w"], p["b"]
    return (
        0.5 * jnp.sum((w - 1.0) ** 2 * jnp.array([1.0, 2.0]))
        + jnp.sum((b + 0.5) ** 2)
        + 0.1 * jnp.sum(w[:, 0] * b[0])
    )


def init_params(seed):
    k1, k2 = jax.random.split(jax.random.key(seed))
    return {"w": jax.random.normal(k1, (3, 2)), "b": jax.random.normal(k2, (2,))}


_P0 = init_params(0)
_RNG = np.random.default_rng(0)
_FISHER = jax.tree.map(lambda x: jnp.asarray(_RNG.uniform(0, 1, x.shape), jnp.float32), _P0)
_ANCHOR = jax.tree.map(lambda x: jnp.asarray(_RNG.normal(size=x.shape), jnp.float32), _P0)


def no_extra(params, grads, value, step):
    return {}


def value_extra(params, grads, value, step):
    return {"value": value}


def gem_extra(params, grads, value, step):
    mem = jax.tree.map(lambda p: jnp.stack([jnp.ones_like(p), -p, jnp.cos(p + step)]), params)
    return {"memory_grads": mem}


def agem_extra(params, grads, value, step):
    return {"ref_grads": jax.tree.map(lambda p: 0.3 - p, params)}


def curvature_extra(params, grads, value, step):
    hvp_fn = lambda x, v: jax.jvp(jax.grad(loss), (x,), (v,))[1]
    return {"value": value, "grad": grads, "value_fn": loss, "hvp_fn": hvp_fn, "fvp_fn": hvp_fn}


class Entry(NamedTuple):
    name: str
    factory: Any  # the transform factory (what inject_hyperparams wraps)
    kwargs: dict
    extra: Any  # (params, grads, value, step) -> dict of keyword extra args
    inject: str | None = None  # numeric hyperparameter to inject, if any
    wrap: Any = None  # tx -> optimizer (e.g. chain with sgd); None: tx is the optimizer
    static_args: tuple = ()  # inject_hyperparams static_args (ints that set shapes)
    slow: bool = False  # kept out of the default run (covered by a faster test elsewhere)


def then_sgd(tx):
    return optax.chain(tx, optax.sgd(0.1))


def sgd_then(tx):
    return optax.chain(optax.sgd(0.1), tx)


_EWC = dict(fisher=_FISHER, anchor=_ANCHOR, strength=2.0)

TABLE = [
    Entry(
        "ewc_separate", T.ewc, dict(_EWC, mode="separate", max_tasks=3), no_extra, None, then_sgd
    ),
    Entry(
        "ewc_online", T.ewc, dict(_EWC, mode="online", decay=0.9), no_extra, "strength", then_sgd
    ),
    Entry("gem", T.gem, dict(margin=0.1), gem_extra, "margin", then_sgd),
    Entry("agem", T.agem, {}, agem_extra, None, then_sgd),
    Entry(
        "perturbed_gd",
        T.perturbed_gd,
        dict(learning_rate=0.1, radius=0.05, g_thres=10.0, t_thres=1, key=0),
        no_extra,
        "learning_rate",
    ),
    Entry("swa", T.swa, dict(start_step=1, frequency=1), no_extra, None, sgd_then),
    Entry("weight_ema", T.weight_ema, dict(decay=0.9), no_extra, "decay", sgd_then),
    Entry(
        "rollback_guard",
        T.rollback_guard,
        dict(inner=optax.adam(0.05), factor=0.5, spike_factor=10.0),
        value_extra,
        "factor",
    ),
    Entry("gradient_monitor_wrap", T.gradient_monitor, dict(inner=optax.sgd(0.1)), no_extra),
    Entry("gradient_monitor_chain", T.gradient_monitor, {}, no_extra, None, sgd_then),
]

_SECOND_ORDER = [
    ("hessian_free", dict(learning_rate=0.5, max_iters=5), ()),
    ("natural_gradient", dict(learning_rate=0.5, max_iters=5), ()),
    ("trust_region", dict(learning_rate=1.0, max_iters=5), ()),
    ("saddle_free_newton", dict(learning_rate=0.5, num_iters=4, key=0), ("num_iters",)),
]
# tests/test_second_order.py already checks chain/jit/vmap==loop/inject for these with
# one compile less each, so here they run only with `-m slow` (CI time budget).
for _name, _kw, _static in _SECOND_ORDER:
    if hasattr(T, _name):
        TABLE.append(
            Entry(
                _name,
                getattr(T, _name),
                _kw,
                curvature_extra,
                "learning_rate",
                None,
                _static,
                slow=True,
            )
        )


def _params(entries):
    return [pytest.param(e, id=e.name, marks=[pytest.mark.slow] if e.slow else []) for e in entries]


def _fold_seed(state, seed):
    """What the sweep engine does: fold each trajectory's seed into typed key leaves."""

    def fold(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.fold_in(x, seed)
        return x

    return jax.tree.map(fold, state)


def _build(entry: Entry, inject: bool = False):
    if inject:
        tx = optax.inject_hyperparams(entry.factory, static_args=entry.static_args)(**entry.kwargs)
    else:
        tx = entry.factory(**entry.kwargs)
    opt = tx if entry.wrap is None else entry.wrap(tx)
    # every transform must also work inside optax.chain
    return optax.chain(opt, optax.identity())


def _run(opt, extra, seed):
    params = init_params(seed)
    state = _fold_seed(opt.init(params), seed)

    def body(carry, i):
        p, s = carry
        value, g = jax.value_and_grad(loss)(p)
        u, s = opt.update(g, s, p, **extra(p, g, value, i))
        return (optax.apply_updates(p, u), s), value

    (params, state), values = jax.lax.scan(body, (params, state), jnp.arange(STEPS))
    return params, state, values


@functools.cache
def _compiled(name: str, inject: bool):
    """(optimizer, jitted single-seed run, jitted vmapped run), built once per entry."""
    entry = next(e for e in TABLE if e.name == name)
    opt = _build(entry, inject)
    run = functools.partial(_run, opt, entry.extra)
    return (
        opt,
        jax.jit(run, compiler_options=FAST),
        jax.jit(jax.vmap(run), compiler_options=FAST),
    )


def _comparable(tree):
    def conv(x):
        x = jnp.asarray(x)
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return np.asarray(jax.random.key_data(x))
        return np.asarray(x)

    return jax.tree.map(conv, tree)


def _signature(tree):
    return jax.tree.map(lambda x: (jnp.shape(x), jnp.result_type(x)), tree)


@pytest.mark.parametrize("entry", _params(TABLE))
def test_state_shapes_and_dtypes_stable(entry):
    opt, _, _ = _compiled(entry.name, False)
    p = init_params(0)
    state = opt.init(p)
    value, g = jax.value_and_grad(loss)(p)

    def step(s, p, g, value):
        return opt.update(g, s, p, **entry.extra(p, g, value, jnp.int32(0)))

    out_updates, out_state = jax.eval_shape(step, state, p, g, value)
    assert _signature(out_state) == _signature(state)
    assert _signature(out_updates) == _signature(g)
    assert jax.tree.structure(state) == jax.tree.structure(out_state)
    for leaf in jax.tree.leaves(state):  # arrays only
        assert isinstance(leaf, jax.Array), type(leaf)


@pytest.mark.parametrize("entry", _params(TABLE))
def test_jit_vmap_over_seeds_matches_loop(entry):
    _, single, batched = _compiled(entry.name, False)
    seeds = jnp.arange(SEEDS)
    pv, sv, vv = batched(seeds)
    for i in range(SEEDS):
        ps, ss, vs = single(seeds[i])
        got = _comparable(jax.tree.map(lambda x, i=i: x[i], (pv, sv, vv)))
        want = _comparable((ps, ss, vs))
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6), got, want)
    # it ran, stayed finite and moved the parameters
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(_comparable(pv)))
    moved = optax.tree.norm(optax.tree.sub(pv, jax.vmap(init_params)(seeds)))
    assert float(moved) > 0


@pytest.mark.parametrize("entry", _params([e for e in TABLE if e.inject]))
def test_inject_hyperparams_matches_plain(entry):
    _, single, _ = _compiled(entry.name, False)
    opt_i, single_i, _ = _compiled(entry.name, True)
    state = opt_i.init(init_params(0))
    found = [
        x
        for x in jax.tree.leaves(state, is_leaf=lambda x: hasattr(x, "hyperparams"))
        if hasattr(x, "hyperparams")
    ]
    assert found and entry.inject in found[0].hyperparams
    p_plain, _, v_plain = single(jnp.int32(1))
    p_inj, _, v_inj = single_i(jnp.int32(1))
    np.testing.assert_allclose(np.asarray(v_inj), np.asarray(v_plain), rtol=1e-5, atol=1e-6)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), p_inj, p_plain
    )
