"""Finding one transform's state inside a composite optimizer state."""

from __future__ import annotations

from typing import Any

import jax


def find_state(opt_state: Any, state_type: type, *, optional: bool = False) -> Any:
    """The single ``state_type`` instance inside ``opt_state`` (a chain, a wrapper, ...).

    Args:
      opt_state: any optimizer state pytree (``optax.chain`` tuples, ``inject_hyperparams``
        states, wrapper states).
      state_type: the NamedTuple class to look for.
      optional: return None instead of raising when there is none (e.g. an optimizer
        family without that transform).

    Returns:
      The one instance found (or None, with ``optional``, when there is none).

    Raises:
      ValueError: when ``opt_state`` holds several, or none unless ``optional``.
    """
    is_it = lambda x: isinstance(x, state_type)
    found = [x for x in jax.tree.leaves(opt_state, is_leaf=is_it) if is_it(x)]
    if optional and not found:
        return None
    if len(found) > 1 and optional:
        raise ValueError(
            f"opt_state must contain at most one {state_type.__name__}, found {len(found)}"
        )
    if len(found) != 1:
        raise ValueError(
            f"opt_state must contain exactly one {state_type.__name__}, found {len(found)}"
        )
    return found[0]
