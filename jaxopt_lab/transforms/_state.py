"""Finding one transform's state inside a composite optimizer state."""

from __future__ import annotations

from typing import Any

import jax


def find_state(opt_state: Any, state_type: type) -> Any:
    """The single ``state_type`` instance inside ``opt_state`` (a chain, a wrapper, ...).

    Args:
      opt_state: any optimizer state pytree (``optax.chain`` tuples, ``inject_hyperparams``
        states, wrapper states).
      state_type: the NamedTuple class to look for.

    Returns:
      The one instance found.

    Raises:
      ValueError: when ``opt_state`` holds none or several.
    """
    is_it = lambda x: isinstance(x, state_type)
    found = [x for x in jax.tree.leaves(opt_state, is_leaf=is_it) if is_it(x)]
    if len(found) != 1:
        raise ValueError(
            f"opt_state must contain exactly one {state_type.__name__}, found {len(found)}"
        )
    return found[0]
