"""Fuzzed bad inputs to curvature/, transforms/ and search/: each raises a ValueError or
TypeError naming the argument before anything compiles (each used to end in a raw JAX
error naming no argument, or to run on silently)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_lab import curvature, search, transforms

K = jax.random.key(0)
X = jnp.zeros(3)


def _sq(x, *args):
    return jnp.sum(x**2)


def _needs_4(x, *args):
    return jnp.sum(x * jnp.ones(4))  # wrong dimension for a point of shape (3,)


@pytest.mark.parametrize(
    "call, error, match",
    [
        # a point of the wrong dimension for the loss
        (lambda: curvature.eigsh(_needs_4, X, key=K), ValueError, r"^x does not fit f"),
        (lambda: curvature.power_iteration(_needs_4, X, key=K), ValueError, r"^x does not fit f"),
        (lambda: curvature.trace(_needs_4, X, key=K), ValueError, r"^x does not fit f"),
        (lambda: curvature.spectral_density(_needs_4, X, key=K), ValueError, "^x does not fit"),
        (lambda: curvature.hvp(_needs_4, X, X), ValueError, r"^x does not fit f"),
        (lambda: curvature.landscape_slice(_needs_4, X, X, X), ValueError, r"^x does not fit f"),
        (
            lambda: curvature.curvature_map(_needs_4, (-np.ones(2), np.ones(2)), 4),
            ValueError,
            "grid point does not fit f",
        ),
        (
            lambda: search.simulated_annealing(_needs_4, (np.zeros(3), np.ones(3)), 0),
            ValueError,
            r"f fails on one point x of shape \(3,\) \(the dimension of bounds\)",
        ),
        # dtypes and non-float parameters
        (
            lambda: curvature.hvp(_sq, jnp.zeros(3, jnp.float16), jnp.ones(3, jnp.float32)),
            TypeError,
            "^v must have the dtypes of x",
        ),
        (
            lambda: curvature.hvp(_sq, jnp.zeros(3, jnp.int32), jnp.ones(3, jnp.int32)),
            TypeError,
            "^x must contain only floating",
        ),
        (lambda: curvature.hessian(lambda x: x, X), ValueError, "^f must return a real floating"),
        (lambda: curvature.hvp(3.0, X, X), TypeError, "^f must be callable"),
        (
            lambda: curvature.random_directions(K, jnp.zeros(3, jnp.int32)),
            TypeError,
            "^params must contain only floating",
        ),
        # keys: missing or malformed
        (lambda: curvature.eigsh(_sq, X), TypeError, "key"),
        (lambda: curvature.power_iteration(_sq, X), TypeError, "key"),
        (lambda: curvature.eigsh(_sq, X, key="a"), TypeError, "^key must be"),
        (lambda: curvature.trace(_sq, X, key="a"), TypeError, "^key must be"),
        (lambda: curvature.spectral_density(_sq, X, key="a"), TypeError, "^key must be"),
        (lambda: curvature.random_directions("a", X), TypeError, "^key must be"),
        (lambda: curvature.landscape_slice(_sq, X, key="a"), TypeError, "^key must be"),
        (lambda: curvature.lanczos(lambda v: v, jnp.ones(3), 2, key="a"), TypeError, "^key"),
        (lambda: transforms.sample_uniform_ball("a", X, 1.0), TypeError, "^key must be"),
        (lambda: transforms.saddle_free_newton(), TypeError, "key"),
        (lambda: transforms.saddle_free_newton(key="a"), TypeError, "^key must be"),
        # callables and solvers
        (lambda: curvature.lanczos(3, jnp.ones(3), 2), TypeError, "^matvec must be callable"),
        (lambda: curvature.curvature_fns(None, 1), TypeError, "^loss must be callable"),
        (
            lambda: curvature.gauss_newton_fns(lambda p, x: x, lambda z, y: z, jnp.ones(3)),
            ValueError,
            r"^batch must be a pair \(x, y\)",
        ),
        (lambda: curvature.empirical_fisher_fns(3, 1), TypeError, "^per_example_loss must be"),
        (
            lambda: curvature.conjugate_gradient(lambda v: v, jnp.array([jnp.nan, 1.0])),
            ValueError,
            "^b must be finite",
        ),
        (
            lambda: curvature.conjugate_gradient(lambda v: jnp.ones(4), jnp.ones(3)),
            ValueError,
            r"^matvec\(b\) and b must have the same leaf shapes",
        ),
        (
            lambda: curvature.conjugate_gradient(lambda v: v, jnp.ones(3), x0=jnp.ones(2)),
            ValueError,
            "^x0 and b",
        ),
        (
            lambda: curvature.steihaug_cg(lambda v: v, jnp.array([jnp.inf]), 1.0),
            ValueError,
            "^g must be finite",
        ),
        (
            lambda: curvature.steihaug_cg(lambda v: v[:1], jnp.ones(3), 1.0),
            ValueError,
            r"^matvec\(g\) and g",
        ),
        # transforms
        (lambda: transforms.sample_uniform_ball(K, X, -1.0), ValueError, "^radius must be >= 0"),
        (lambda: transforms.sample_uniform_ball(K, X, np.nan), ValueError, "^radius must be fin"),
        (lambda: transforms.gradient_monitor(inner=3), TypeError, "^inner must be an optax"),
    ],
)
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_second_order_update_names_a_non_callable_extra_argument():
    for opt, name in (
        (transforms.hessian_free(), "hvp_fn"),
        (transforms.trust_region(), "hvp_fn"),
        (transforms.natural_gradient(), "fvp_fn"),
        (transforms.saddle_free_newton(key=0), "hvp_fn"),
    ):
        with pytest.raises(TypeError, match=f"update: {name} must be callable"):
            opt.update(X, opt.init(X), X, **{name: 3, "value_fn": _sq})


def test_eigsh_wrong_dimension_is_caught_before_tracing_the_program():
    # the check traces f only for shapes (eval_shape): a valid call afterwards still runs
    with pytest.raises(ValueError, match="x does not fit f"):
        curvature.eigsh(_needs_4, X, key=K)
    res = curvature.eigsh(_sq, X, key=K, k=1)
    np.testing.assert_allclose(np.asarray(res.eigenvalues), [2.0], rtol=1e-5)


def test_hessian_free_inside_jit_still_works_with_solver_checks():
    # the matvec shape check of the CG solvers runs on tracers inside a jitted update
    opt = optax.chain(transforms.hessian_free(1.0, damping=0.0))
    loss = lambda p, b: 0.5 * jnp.sum(b * p**2)
    fns = lambda: curvature.curvature_fns(loss, jnp.arange(1.0, 4.0))

    @jax.jit
    def step(x):
        g = jax.grad(lambda p: 0.5 * jnp.sum(jnp.arange(1.0, 4.0) * p**2))(x)
        return opt.update(g, opt.init(x), x, **fns())[0]

    np.testing.assert_allclose(np.asarray(step(jnp.ones(3))), -np.ones(3), rtol=1e-5)
