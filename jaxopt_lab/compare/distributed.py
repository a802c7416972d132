"""Several processes (hosts), one sweep: ``jax.distributed`` set-up and a consistency check.

Run the same program with the same arguments in every process, after calling
:func:`initialize` (before any other JAX call). ``jax.devices()`` then lists the devices
of every process, the sweep core's ``"seeds"`` mesh spans them all, each process computes
the seeds on its own devices, every chunk's outputs are all-gathered (so every process
returns the full results) and only process 0 writes the run directory. Before anything
compiles, :func:`check_consistent` compares a hash of each process's arguments, library
versions and per-seed program, and names what differs.

Example (two hosts; the same command on each, ``--process-id`` 0 and 1)::

    jaxopt-lab compare --coordinator host0:12345 --num-processes 2 --process-id 0
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import numpy as np

ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "JAX_PROCESS_ID"

_STATE: dict = {"initialized": False}


def _env_int(name: str) -> int | None:
    v = os.environ.get(name)
    if v is None or v == "":
        return None
    try:
        return int(v)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {v!r}") from None


def settings(coordinator: str | None = None, num_processes: int | None = None,
             process_id: int | None = None) -> dict | None:
    """The multi-process settings from arguments, else the environment
    (``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``), else a Slurm
    allocation of several tasks (``SLURM_NTASKS`` > 1: JAX detects the rest); None for a
    single process. Raises ValueError naming the bad argument."""
    coordinator = coordinator if coordinator is not None else os.environ.get(ENV_COORDINATOR)
    num_processes = num_processes if num_processes is not None else _env_int(
        ENV_NUM_PROCESSES)
    process_id = process_id if process_id is not None else _env_int(ENV_PROCESS_ID)
    given = [coordinator is not None, num_processes is not None, process_id is not None]
    if not any(given):
        if (_env_int("SLURM_NTASKS") or 1) > 1:
            return {"auto": "slurm"}
        return None
    if not all(given):
        raise ValueError("coordinator, num_processes and process_id go together: give all "
                         "three (or none, for one process or a Slurm allocation)")
    if not isinstance(coordinator, str) or ":" not in coordinator or not coordinator.rsplit(
            ":", 1)[1].isdigit():
        raise ValueError(f"coordinator must be 'host:port', got {coordinator!r}")
    if isinstance(num_processes, bool) or not isinstance(num_processes, int) or num_processes < 1:
        raise ValueError(f"num_processes must be an integer >= 1, got {num_processes!r}")
    if (isinstance(process_id, bool) or not isinstance(process_id, int)
            or not 0 <= process_id < num_processes):
        raise ValueError(f"process_id must be an integer in [0, {num_processes}), got "
                         f"{process_id!r}")
    return {"coordinator_address": coordinator, "num_processes": num_processes,
            "process_id": process_id}


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, timeout_seconds: int = 300) -> bool:
    """Join the processes of a multi-host sweep (a no-op for a single process).

    Must run before any other JAX call of the process. Uses CPU collectives (gloo) so that
    CPU processes can all-gather too. Returns whether ``jax.distributed`` was initialized.
    """
    cfg = settings(coordinator, num_processes, process_id)
    if cfg is None or _STATE["initialized"]:
        return _STATE["initialized"]
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if cfg.get("auto"):
        jax.distributed.initialize(initialization_timeout=timeout_seconds)
    else:
        jax.distributed.initialize(**cfg, initialization_timeout=timeout_seconds)
    _STATE["initialized"] = True
    return True


def _digest(obj: Any) -> np.ndarray:
    blob = json.dumps(obj, sort_keys=True, default=repr).encode()
    return np.frombuffer(hashlib.sha256(blob).digest()[:8], np.uint32).copy()


def check_consistent(components: dict[str, Any]) -> None:
    """Raise ValueError in every process when the processes disagree on any component.

    Args:
      components: name -> JSON-able value (e.g. ``arguments``, ``versions``,
        ``program``); each is hashed and the hashes are all-gathered (one small collective).

    A no-op for a single process.
    """
    import jax

    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    names = list(components)
    mine = np.stack([_digest(components[n]) for n in names])  # [n_components, 2]
    everyone = np.asarray(multihost_utils.process_allgather(mine))  # [n_proc, n_comp, 2]
    bad = []
    for j, name in enumerate(names):
        differ = [p for p in range(everyone.shape[0])
                  if not np.array_equal(everyone[p, j], everyone[0, j])]
        if differ:
            bad.append(f"{name} (process(es) {differ} differ from process 0)")
    if bad:
        raise ValueError("the processes of this multi-host run disagree on: " + "; ".join(bad)
                         + ". Run the same command with the same library versions in every "
                         "process.")


__all__ = ["check_consistent", "initialize", "settings"]
