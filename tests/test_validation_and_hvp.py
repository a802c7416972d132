"""Shared validation helpers and HVP / dense Hessian against closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxopt_lab import _validation as v
from jaxopt_lab.curvature import hessian, hvp


def test_check_int_and_positive_name_the_argument():
    with pytest.raises(TypeError, match="num_iters"):
        v.check_int("num_iters", 2.5)
    with pytest.raises(ValueError, match="num_iters must be >= 1, got 0"):
        v.check_int("num_iters", 0)
    assert v.check_int("k", np.int64(3)) == 3
    with pytest.raises(ValueError, match="radius must be > 0"):
        v.check_positive("radius", 0.0)
    assert v.check_positive("radius", 0.0, allow_zero=True) == 0.0
    with pytest.raises(ValueError, match="strength must be finite"):
        v.check_positive("strength", float("nan"))
    with pytest.raises(ValueError, match="which must be one of"):
        v.check_choice("which", "XX", ("LA", "SA"))


def test_check_vector_and_structure():
    with pytest.raises(ValueError, match=r"x must have shape \(3,\)"):
        v.check_vector("x", np.zeros(2), 3)
    with pytest.raises(ValueError, match="x must be finite"):
        v.check_vector("x", np.array([0.0, np.inf]))
    with pytest.raises(ValueError, match="fisher and anchor"):
        v.check_same_structure("fisher", {"a": 1.0}, "anchor", {"b": 1.0})
    with pytest.raises(ValueError, match="leaf shapes"):
        v.check_same_structure("fisher", {"a": np.zeros(2)}, "anchor", {"a": np.zeros(3)})


def test_as_key_accepts_typed_raw_and_int_and_names_the_argument():
    same = lambda a, b: np.testing.assert_array_equal(
        jax.random.key_data(a), jax.random.key_data(b)
    )
    k = jax.random.key(3)
    assert v.as_key("key", k) is k
    same(v.as_key("key", 3), k)
    same(v.as_key("key", np.int64(3)), k)
    same(v.as_key("key", jnp.asarray(3)), k)  # what optax.inject_hyperparams passes
    same(v.as_key("key", jax.random.PRNGKey(3)), jax.random.wrap_key_data(jax.random.PRNGKey(3)))
    same(jax.jit(lambda s: v.as_key("key", s))(3), k)  # traced seeds are fine
    for bad in ("a", None, 1.5, True, jnp.zeros(3), jnp.zeros(2, jnp.int32)):
        with pytest.raises(TypeError, match="^key must be a jax.random.key"):
            v.as_key("key", bad)
    with pytest.raises(ValueError, match="seed must be a single PRNG key"):
        v.as_key("seed", jax.random.split(k, 2))


def test_check_int_hparam_takes_concrete_int_arrays_and_passes_tracers():
    assert v.check_int_hparam("t_thres", jnp.asarray(4)) == 4
    with pytest.raises(TypeError, match="t_thres must be an integer"):
        v.check_int_hparam("t_thres", jnp.asarray(4.0))
    with pytest.raises(ValueError, match="frequency must be >= 1"):
        v.check_int_hparam("frequency", 0, minimum=1)
    assert jax.jit(lambda n: v.check_int_hparam("n", n) + 1)(2) == 3
    with pytest.raises(TypeError, match=r"static_args=\('num_iters',\)"):
        jax.jit(lambda n: v.check_int_hparam("num_iters", n, allow_traced=False))(2)


def test_hvp_matches_closed_form_on_pytree_with_args():
    # f(p, c) = sum(c * w^3) + (w . b)^2 -> H = diag(6 c w) + 2 [w;b]-block terms
    def f(p, c):
        return jnp.sum(c * p["w"] ** 3) + jnp.dot(p["w"], p["b"]) ** 2

    rng = np.random.default_rng(0)
    w, b, c = (rng.normal(size=3).astype(np.float32) for _ in range(3))
    p = {"w": jnp.asarray(w), "b": jnp.asarray(b)}
    # dense closed-form Hessian over [w, b]
    n = 3
    h = np.zeros((2 * n, 2 * n))
    h[:n, :n] = np.diag(6 * c * w) + 2 * np.outer(b, b)
    h[n:, n:] = 2 * np.outer(w, w)
    cross = 2 * np.outer(w, b) + 2 * np.dot(w, b) * np.eye(n)  # d2/dw db^T ... as [w_i, b_j]
    h[:n, n:] = cross.T
    h[n:, :n] = cross
    h = 0.5 * (h + h.T)
    dense = np.asarray(hessian(f, p, jnp.asarray(c)))
    # ravel_pytree orders dict keys alphabetically: b first, then w
    perm = np.r_[n : 2 * n, 0:n]
    np.testing.assert_allclose(dense, h[np.ix_(perm, perm)], rtol=1e-4, atol=1e-4)
    vec = {"w": jnp.ones(3), "b": jnp.arange(3.0)}
    out = hvp(f, p, vec, jnp.asarray(c))
    flat_v = np.r_[np.arange(3.0), np.ones(3)]
    np.testing.assert_allclose(
        np.r_[np.asarray(out["b"]), np.asarray(out["w"])], dense @ flat_v, rtol=1e-4, atol=1e-4
    )


def test_hvp_jits_and_vmaps():
    f = lambda x: jnp.sum(jnp.sin(x))
    x = jnp.linspace(0.0, 1.0, 4)
    vs = jnp.eye(4)
    rows = jax.jit(jax.vmap(lambda e: hvp(f, x, e)))(vs)
    np.testing.assert_allclose(np.asarray(rows), np.diag(-np.sin(np.asarray(x))), atol=1e-6)


def test_hvp_and_hessian_reject_bad_input_naming_the_argument():
    calls = []

    def f(p, c):
        calls.append(1)
        return c * jnp.sum(p["a"] ** 2)

    x = {"a": jnp.ones(3)}
    with pytest.raises(ValueError, match="v and x must have the same pytree structure"):
        hvp(f, x, {"b": jnp.ones(3)}, 2.0)
    with pytest.raises(ValueError, match="v and x must have the same leaf shapes"):
        hvp(f, x, {"a": jnp.ones(4)}, 2.0)
    with pytest.raises(ValueError, match="x must be finite"):
        hvp(f, {"a": jnp.array([1.0, jnp.nan, 0.0])}, x, 2.0)
    with pytest.raises(ValueError, match="x must be finite"):
        hessian(f, {"a": jnp.array([1.0, jnp.inf, 0.0])}, 2.0)
    assert not calls  # rejected before f was traced
    # valid calls, eager and under jit (values of tracers are not checked)
    np.testing.assert_allclose(hvp(f, x, x, 2.0)["a"], 4.0 * np.ones(3))
    np.testing.assert_allclose(jax.jit(lambda p: hvp(f, p, p, 2.0))(x)["a"], 4.0 * np.ones(3))
    np.testing.assert_allclose(hessian(f, x, 2.0), 4.0 * np.eye(3))


def test_check_positive_tuple_names_the_tuple_and_the_item():
    from jaxopt_lab._validation import check_positive_tuple

    assert check_positive_tuple("rates", (1, 0.5), item="rate") == (1, 0.5)
    for bad, word in (((), "rates"), ([0.1], "rates"), ((0.1, float("inf")), "rate"),
                      ((0.0,), "rate"), ((True,), "rate"), (("0.1",), "rate")):
        with pytest.raises(ValueError, match=word):
            check_positive_tuple("rates", bad, item="rate")
