"""A run sharded over 4 forced CPU devices equals the single-device run (subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from jaxopt_lab import compare

HERE = os.path.dirname(os.path.abspath(__file__))


def objective(x):
    return x[0] ** 2 - x[1] ** 2 + 0.1 * x[0] * x[1] + 0.25 * x[1] ** 4


def call():
    """10 seeds in chunks of 6: on 4 devices each chunk is padded to 8 (2 per device)."""
    from test_compare_engine import noisy_curvature_step

    return compare.run(
        objective,
        # one family covers a traced grid, a typed-key state and extra args (hvp_fn, value)
        {"noisy": (noisy_curvature_step, {"learning_rate": [0.05, 0.2]})},
        num_seeds=10, steps=25, key=jax.random.key(5), bounds=([-1.0, -1.0], [1.0, 1.0]),
        escape_center=[0.0, 0.0], escape_radius=0.6, target=-0.9, record_every=5,
        chunk_size=6,
    )


SCRIPT = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {here!r})
    import jax
    import numpy as np
    assert jax.device_count() == 4, jax.devices()
    from test_compare_sharding import call
    res = call()
    out = {{"device_count": np.array(res.meta["device"]["count"])}}
    for name in res.optimizers:
        for k, v in res.metrics[name].items():
            out[name + "/" + k] = v
        out[name + "/traj"] = res.trajectories[name]
    np.savez({path!r}, **out)
""")


def test_four_devices_equal_one(tmp_path):
    path = str(tmp_path / "sharded.npz")
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(here=HERE, path=path)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sharded = np.load(path)
    assert int(sharded["device_count"]) == 4
    single = call()
    assert single.meta["device"]["count"] == jax.device_count()
    n_finite = 0
    for name in single.optimizers:
        for k, v in single.metrics[name].items():
            other = sharded[f"{name}/{k}"]
            assert other.shape == v.shape
            if k in ("escape_step", "hit_step", "nonfinite"):
                np.testing.assert_array_equal(other, v, err_msg=f"{name}/{k}")
                n_finite += int(np.sum(np.isfinite(v))) if k != "nonfinite" else 0
            else:
                np.testing.assert_allclose(other, v, rtol=1e-5, atol=1e-6, err_msg=f"{name}/{k}")
        np.testing.assert_allclose(sharded[f"{name}/traj"], single.trajectories[name],
                                   rtol=1e-5, atol=1e-6)
    assert n_finite > 0  # some escapes/hits happened, so the comparison can fail


CORES_SCRIPT = """
import os, sys
import jax
from jaxopt_lab.compare import devices
if sys.argv[1] == "set":
    assert devices.use_cpu_cores(3) == 3
    assert "--xla_cpu_multi_thread_eigen=false" in os.environ["XLA_FLAGS"]
else:  # XLA_FLAGS sets the device count: the user's choice wins
    assert devices.use_cpu_cores(3) is None
    assert "multi_thread_eigen" not in os.environ["XLA_FLAGS"]
print(jax.device_count())
"""


@pytest.mark.parametrize("mode,flags,expected", [
    ("set", "", 3), ("user", "--xla_force_host_platform_device_count=2", 2)])
def test_use_cpu_cores(mode, flags, expected):
    """One CPU device per core, set before the backend starts; never overrides XLA_FLAGS's
    device count."""
    env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", CORES_SCRIPT, mode], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(proc.stdout.split()[-1]) == expected


def test_use_cpu_cores_leaves_a_started_backend():
    from jaxopt_lab.compare import devices

    n, flags = jax.device_count(), os.environ.get("XLA_FLAGS")  # the backend is started
    assert devices.use_cpu_cores(n + 2) is None and devices.use_cpu_cores(1) is None
    assert jax.device_count() == n and os.environ.get("XLA_FLAGS") == flags


@pytest.mark.parametrize("bad,error", [(0, ValueError), (-1, ValueError), (2.0, TypeError),
                                       (True, TypeError), ("2", TypeError)])
def test_use_cpu_cores_bad_input(bad, error):
    from jaxopt_lab.compare import devices

    with pytest.raises(error, match="cores"):
        devices.use_cpu_cores(bad)
