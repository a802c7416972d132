"""Named optimizer factories: ``name -> f(learning_rate, **options) -> optax transformation``.

The registry the ``jaxopt-lab compare`` command (and scripts) use to turn names such as
``"sgd,momentum,adam"`` into optax ``GradientTransformation`` s. Optax supplies every
first-order method; ``pgd`` (perturbed gradient descent) comes from
:mod:`jaxopt_lab.transforms` and is only listed when that module provides it.

Example:
  >>> from jaxopt_lab import optimizers
  >>> opt = optimizers.get("momentum", 0.01)
  >>> sorted(optimizers.names())[:3]
  ['adagrad', 'adam', 'lion']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from jaxopt_lab._validation import check_choice, check_positive

__all__ = [
    "ALIASES",
    "OPTIMIZERS",
    "OptimizerSpec",
    "PGD_DEFAULTS",
    "PGD_KEY_SEED",
    "canonical",
    "get",
    "grid",
    "names",
]


@dataclass(frozen=True)
class OptimizerSpec:
    """One registry entry.

    Attributes:
      name: canonical name.
      label: human-readable name for tables and legends.
      build: ``build(learning_rate, **options) -> GradientTransformation``.
      reference: (author, year, title) of the method.
      defaults: default options passed to ``build``.
    """

    name: str
    label: str
    build: Callable[..., Any]
    reference: str
    defaults: dict = field(default_factory=dict)


# Perturbed GD defaults for landscapes of unit scale (|H| ~ 1, escape radius ~ 1): perturb
# with a ball of radius 1e-2 whenever ||g|| < 1e-2, at most once every 10 steps.
PGD_DEFAULTS = {"radius": 1e-2, "g_thres": 1e-2, "t_thres": 10}


def _optax(fn_name: str, **fixed: Any) -> Callable[..., Any]:
    def build(learning_rate: float, **options: Any):
        import optax

        return getattr(optax, fn_name)(learning_rate, **{**fixed, **options})

    build.__name__ = f"optax_{fn_name}"
    return build


def _second_order(fn_name: str) -> Callable[..., Any]:
    """A second-order transform of :mod:`jaxopt_lab.transforms` (needs ``hvp_fn``, and
    ``value_fn`` for the trust region, through the update contract of
    :mod:`jaxopt_lab.compare.steps`; ``learning_rate`` scales the Newton-like step, 1.0 is
    the textbook method). Saddle-free Newton's state key defaults to
    ``key(PGD_KEY_SEED)`` (the sweep core folds it per seed)."""
    def build(learning_rate: float, **options: Any):
        from jaxopt_lab import transforms

        if fn_name == "saddle_free_newton" and "key" not in options:
            import jax

            options["key"] = jax.random.key(PGD_KEY_SEED)
        return getattr(transforms, fn_name)(learning_rate, **options)

    build.__name__ = fn_name
    return build


def _import_pgd():
    from jaxopt_lab.transforms import perturbed_gd

    return perturbed_gd


# Seed of the key perturbed GD draws its kicks from when the caller gives none. The sweep
# engine folds each trajectory's seed into every typed PRNG key leaf of an optimizer
# state, so seeds still get independent kicks.
PGD_KEY_SEED = 0


def _pgd(learning_rate: float, **options: Any):
    options = {**PGD_DEFAULTS, **options}
    if "key" not in options:
        import jax

        options["key"] = jax.random.key(PGD_KEY_SEED)
    return _import_pgd()(learning_rate, **options)


OPTIMIZERS: dict[str, OptimizerSpec] = {
    spec.name: spec
    for spec in (
        OptimizerSpec("sgd", "SGD", _optax("sgd"), "Robbins & Monro, 1951. A stochastic "
                      "approximation method."),
        OptimizerSpec("momentum", "SGD+momentum", _optax("sgd", momentum=0.9),
                      "Polyak, 1964. Some methods of speeding up the convergence of "
                      "iteration methods."),
        OptimizerSpec("nesterov", "Nesterov", _optax("sgd", momentum=0.9, nesterov=True),
                      "Nesterov, 1983. A method for solving the convex programming problem "
                      "with convergence rate O(1/k^2)."),
        OptimizerSpec("adam", "Adam", _optax("adam"), "Kingma & Ba, 2015. Adam: a method "
                      "for stochastic optimization."),
        OptimizerSpec("rmsprop", "RMSProp", _optax("rmsprop"), "Tieleman & Hinton, 2012. "
                      "Lecture 6.5, RMSProp (COURSERA: Neural Networks for ML)."),
        OptimizerSpec("adagrad", "Adagrad", _optax("adagrad"), "Duchi, Hazan & Singer, 2011. "
                      "Adaptive subgradient methods for online learning."),
        OptimizerSpec("lion", "Lion", _optax("lion"), "Chen et al., 2023. Symbolic discovery "
                      "of optimization algorithms."),
        OptimizerSpec("pgd", "Perturbed GD", _pgd, "Jin, Ge, Netrapalli, Kakade & Jordan, "
                      "2017. How to escape saddle points efficiently.", dict(PGD_DEFAULTS)),
        OptimizerSpec("hessian_free", "Hessian-free Newton-CG", _second_order("hessian_free"),
                      "Martens, 2010. Deep learning via Hessian-free optimization."),
        OptimizerSpec("saddle_free", "Saddle-free Newton", _second_order("saddle_free_newton"),
                      "Dauphin et al., 2014. Identifying and attacking the saddle point "
                      "problem in high-dimensional non-convex optimization."),
        OptimizerSpec("trust_region", "Trust region (Steihaug-CG)",
                      _second_order("trust_region"), "Steihaug, 1983. The conjugate gradient "
                      "method and trust regions in large scale optimization."),
    )
}

# Accepted spellings -> canonical name (lookups are case-insensitive).
ALIASES = {
    "gd": "sgd",
    "sgd+momentum": "momentum",
    "sgdm": "momentum",
    "heavy_ball": "momentum",
    "perturbed_gd": "pgd",
    "perturbed-gd": "pgd",
}


def _pgd_available() -> bool:
    try:
        _import_pgd()
    except ImportError:
        return False
    return True


def names(*, available_only: bool = True) -> list[str]:
    """Canonical optimizer names (``pgd`` only when jaxopt_lab.transforms provides it).

    Args:
      available_only: drop entries whose implementation cannot be imported.

    Returns:
      list of names in registry order.
    """
    out = list(OPTIMIZERS)
    if available_only and not _pgd_available():
        out.remove("pgd")
    return out


def canonical(name: str) -> str:
    """Return the canonical registry name for ``name`` (case-insensitive, aliases allowed).

    Raises:
      TypeError: ``name`` is not a string.
      ValueError: unknown name (the message lists the valid names).
    """
    if not isinstance(name, str):
        raise TypeError(f"optimizer must be a string, got {name!r} ({type(name).__name__})")
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    check_choice("optimizer", key if key in names() else name, names())
    return key


def get(name: str, learning_rate: float, **options: Any):
    """Build the optax transformation registered under ``name``.

    Args:
      name: registry name or alias (see :func:`names`), case-insensitive.
      learning_rate: step size, > 0.
      **options: extra keyword options for the factory (e.g. ``momentum=0.5`` for
        ``momentum``; ``radius``, ``g_thres``, ``t_thres``, ``key`` for ``pgd``).

    Returns:
      an ``optax.GradientTransformation``.

    Raises:
      ValueError / TypeError: unknown name or non-positive learning rate.
    """
    key = canonical(name)
    check_positive("learning_rate", learning_rate)
    return OPTIMIZERS[key].build(float(learning_rate), **options)


def grid(optimizers: Sequence[str], learning_rates: Sequence[float]) -> dict:
    """The ``optimizers`` argument of :func:`jaxopt_lab.compare.run` for names x learning rates.

    Args:
      optimizers: registry names or aliases (duplicates after canonicalisation are dropped).
      learning_rates: learning rates (each > 0); the engine traces them, so the whole grid
        is one compiled program per optimizer.

    Returns:
      dict canonical name -> ``(factory, {"learning_rate": [...]})``.

    Example:
      >>> from jaxopt_lab import optimizers
      >>> list(optimizers.grid(["SGD", "adam"], [0.01, 0.05]))
      ['sgd', 'adam']
    """
    if isinstance(optimizers, str):
        raise TypeError(f"optimizers must be a list of names, got the string {optimizers!r}")
    lrs = [float(check_positive("learning_rates", v)) for v in learning_rates]
    if not lrs:
        raise ValueError("learning_rates must not be empty")
    names_ = list(dict.fromkeys(canonical(n) for n in optimizers))
    if not names_:
        raise ValueError("optimizers must not be empty")
    return {n: (OPTIMIZERS[n].build, {"learning_rate": lrs}) for n in names_}
