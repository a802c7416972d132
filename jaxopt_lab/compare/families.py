"""Optimizer families: the unit of compilation of the sweep core.

A sweep's ``optimizers`` maps a name to a ready-made optax transform or to a pair
``(factory, grid)``. One *family* is one entry; its grid's combinations split into
*groups* that share static hyperparameters (Python ints, bools, strings: baked into the
program) while float hyperparameters are traced (one program for the whole grid).
"""

from __future__ import annotations

import dataclasses
import inspect
import itertools
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import optax

from jaxopt_lab import _fingerprint


@dataclasses.dataclass
class Group:
    """Grid combinations sharing static hyperparameters (one compiled program)."""

    static: dict  # static hyperparameters (Python values, baked into the program)
    indices: list  # positions of this group's combinations in the family's hparams list
    traced: dict  # name -> np.ndarray [H_g] float32


@dataclasses.dataclass
class OptimizerFamily:
    """One optimizer entry of a sweep: its factory (or transform), grid and groups."""

    name: str
    factory: Callable | None  # None for a ready-made transform
    transform: Any  # the ready-made transform, or factory(**first combination)
    hparams: list  # list of dicts (all combinations, output order)
    groups: list  # list of Group
    extra_args: bool
    desc: dict  # JSON-able description for meta (kind, factory name, grid, traced keys)

    def stable_desc(self) -> dict:
        """``desc`` plus a fingerprint of the factory / transform that is the same in every
        process (the resumable store's identity); computed once per family."""
        if "fingerprint" not in self.desc:
            self.desc["fingerprint"] = _fingerprint.stable_hash(
                self.transform if self.factory is None else self.factory)
        return self.desc


def is_transform(obj) -> bool:
    """True for an optax transformation (or any object with init/update)."""
    return isinstance(obj, optax.GradientTransformation) or (
        hasattr(obj, "init") and hasattr(obj, "update") and callable(obj.update)
    )


def resolve_factory(name: str, value: Any) -> Callable:
    """A factory from a callable or the name of an optax / jaxopt_lab.transforms factory."""
    if callable(value):
        return value
    if isinstance(value, str):
        for mod_name in ("optax", "jaxopt_lab.transforms"):
            try:
                mod = __import__(mod_name, fromlist=["_"])
            except ImportError:
                continue
            fac = getattr(mod, value, None)
            if callable(fac):
                return fac
        raise ValueError(
            f"optimizers[{name!r}]: unknown optimizer {value!r}; give an optax transform, "
            "a factory, or the name of an optax / jaxopt_lab.transforms factory"
        )
    raise TypeError(
        f"optimizers[{name!r}] must be an optax GradientTransformation or (factory, grid), "
        f"got {type(value).__name__}"
    )


def is_traced_grid(values: list) -> bool:
    """Real-number lists with at least one float are traced; ints, bools, strings are static."""
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
        return False
    return any(isinstance(v, (float, np.floating)) for v in values)


def make_family(name: str, entry: Any, force_static: bool = False) -> OptimizerFamily:
    """Validate one ``optimizers`` entry and split its grid into traced/static groups.

    ``force_static`` makes every hyperparameter static (used when a factory cannot take
    traced values). Raises ValueError/TypeError naming ``optimizers[name]``.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"optimizers keys must be non-empty strings, got {name!r}")
    if is_transform(entry):  # an optax transform (a NamedTuple of init/update)
        extra = isinstance(entry, optax.GradientTransformationExtraArgs)
        return OptimizerFamily(name, None, entry, [{}], [Group({}, [0], {})], extra,
                       {"kind": "transform"})
    if isinstance(entry, str):
        entry = (entry, {})
    if not (isinstance(entry, tuple | list) and len(entry) == 2):
        raise TypeError(
            f"optimizers[{name!r}] must be an optax GradientTransformation or a pair "
            f"(factory, {{hyperparameter: [values]}}), got {entry!r}"
        )
    factory = resolve_factory(name, entry[0])
    grid = entry[1]
    if not isinstance(grid, Mapping):
        raise TypeError(f"optimizers[{name!r}]: grid must be a dict name -> list, got {grid!r}")
    keys, lists = [], []
    for k, v in grid.items():
        if not isinstance(k, str):
            raise TypeError(f"optimizers[{name!r}]: grid keys must be strings, got {k!r}")
        vals = list(np.asarray(v).tolist()) if isinstance(v, np.ndarray) else v
        if isinstance(vals, str) or not isinstance(vals, list | tuple):
            vals = [vals]
        if len(vals) == 0:
            raise ValueError(f"optimizers[{name!r}]: grid[{k!r}] must not be empty")
        keys.append(k)
        lists.append(list(vals))
    try:
        inspect.signature(factory).bind_partial(**dict.fromkeys(keys))
    except TypeError as e:
        raise ValueError(
            f"optimizers[{name!r}]: the factory does not accept hyperparameters {keys}: {e}"
        ) from None
    except ValueError:  # no signature available (builtins): checked by the call below
        pass
    combos = [dict(zip(keys, c, strict=True)) for c in itertools.product(*lists)]
    try:
        tx = factory(**combos[0])
    except Exception as e:  # noqa: BLE001 - reported as a ValueError naming the entry
        raise ValueError(
            f"optimizers[{name!r}]: factory(**{combos[0]!r}) failed: {type(e).__name__}: {e}"
        ) from None
    if not is_transform(tx):
        raise TypeError(
            f"optimizers[{name!r}]: factory must return an optax GradientTransformation, "
            f"got {type(tx).__name__}"
        )
    traced_keys = [] if force_static else [
        k for k, vals in zip(keys, lists, strict=True) if is_traced_grid(vals)
    ]
    static_keys = [k for k in keys if k not in traced_keys]
    groups: dict = {}
    for idx, c in enumerate(combos):
        skey = tuple((k, _fingerprint.fingerprint(c[k])) for k in static_keys)
        if skey not in groups:
            groups[skey] = Group({k: c[k] for k in static_keys}, [], {})
        groups[skey].indices.append(idx)
    for g in groups.values():
        g.traced = {k: np.asarray([combos[i][k] for i in g.indices], np.float32)
                    for k in traced_keys}
    extra = isinstance(tx, optax.GradientTransformationExtraArgs)
    desc = {
        "kind": "factory",
        "factory": f"{getattr(factory, '__module__', '?')}.{getattr(factory, '__qualname__', '?')}",
        "grid": {k: [jsonable_value(v) for v in vals] for k, vals in zip(keys, lists, strict=True)},
        "traced": traced_keys,
    }
    return OptimizerFamily(name, factory, tx, combos, list(groups.values()), extra, desc)


def jsonable_value(v):
    """A grid value as a JSON type (repr for anything else)."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, bool | int | float | str) or v is None:
        return v
    return repr(v)




def make_families(optimizers: Mapping[str, Any]) -> list[OptimizerFamily]:
    """Validate a whole ``optimizers`` mapping (non-empty dict name -> entry)."""
    if not isinstance(optimizers, Mapping):
        raise TypeError(f"optimizers must be a dict name -> transform, got {type(optimizers)}")
    if len(optimizers) == 0:
        raise ValueError("optimizers must not be empty")
    return [make_family(n, e) for n, e in optimizers.items()]
