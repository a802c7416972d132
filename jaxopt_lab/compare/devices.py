"""Devices of a sweep: the 1-D ``"seeds"`` mesh, host <-> device transfers, chunk layout.

One code path for one CPU, several GPUs, forced CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=4``) and several hosts under
``jax.distributed``: the mesh spans ``jax.devices()``, every process feeds only its own
shards (``make_array_from_callback``) and gathers every chunk's outputs.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding


def seed_mesh() -> Mesh:
    """A 1-D mesh named ``"seeds"`` over every device of every process."""
    return Mesh(np.asarray(jax.devices()), ("seeds",))


def put(mesh: Mesh, tree, spec):
    """Place a pytree of host arrays on ``mesh``, every leaf with partition ``spec``, in one
    batched transfer (multi-process safe: each process feeds only its own shards)."""
    sharding = NamedSharding(mesh, spec)
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def one(arr):
        arr = np.asarray(arr)
        return jax.make_array_from_callback(arr.shape, sharding, lambda idx: arr[idx])

    return jax.tree.map(one, tree)


def fetch(tree):
    """A pytree of device arrays as numpy (one batched transfer), all-gathered across
    processes when needed."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        def one(x):
            if x is None or x.is_fully_addressable:
                return np.asarray(x)
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))

        return jax.tree.map(one, tree)
    return jax.device_get(tree)


def chunk_layout(chunk_size: int, n_dev: int, batch_size: int | None) -> tuple[int, int]:
    """``(padded chunk, micro-batch)``: a chunk of seeds is padded to ``n_dev * m * micro``
    seeds, each device running ``m`` micro-batches of ``micro`` seeds one after another
    (``batch_size`` seeds; default: the whole per-device share at once)."""
    per_dev = -(-chunk_size // n_dev)
    micro = max(1, min(batch_size or per_dev, per_dev))
    m = -(-per_dev // micro)
    return n_dev * m * micro, micro


def platform() -> str:
    """Platform of the default backend (``cpu``, ``gpu``, ``tpu``)."""
    return jax.devices()[0].platform
