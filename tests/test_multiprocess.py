"""Multi-process sweeps on one machine: 2 and 4 processes joined by jax.distributed (CPU
collectives over gloo, 2 forced CPU devices each) run a landscape sweep and a network
training sweep through the core; the records equal a single-process run bit for bit, only
process 0 writes the run directories, a killed run resumes, and processes that disagree
are told what differs before anything compiles."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxopt_lab import compare, models

HERE = os.path.dirname(os.path.abspath(__file__))


def quartic_saddle(x):
    return x[0] ** 2 - x[1] ** 2 + 0.1 * x[0] * x[1] + 0.25 * x[1] ** 4


def landscape_call(out_dir=None, lr=0.05):
    """24 seeds in chunks of 8; micro-batches of one seed on every device layout, so every
    seed runs the same compiled computation whatever the number of devices."""
    return compare.run(
        quartic_saddle,
        {"sgd": (optax.sgd, {"learning_rate": [lr, 0.2]}),
         "noisy": optax.noisy_sgd(0.05, eta=0.5, key=0)},
        num_seeds=24, steps=30, key=jax.random.key(4), bounds=([-1.0, -1.0], [1.0, 1.0]),
        escape_center=[0.0, 0.0], escape_radius=0.6, target=-0.9, chunk_size=8,
        batch_size=1, out_dir=out_dir)


def network_call(out_dir=None):
    model = models.mlp(4, [6], 3, activation="tanh", init="xavier")
    x = jax.random.normal(jax.random.key(1), (48, 4))
    y = jnp.argmax(x[:, :3], axis=1).astype(jnp.int32)

    def batch_fn(data, key, step):
        idx = jax.random.choice(key, data[0].shape[0], (12,), replace=False)
        return data[0][idx], data[1][idx]

    return compare.train(model.init, model.loss, {"sgd": (optax.sgd, {"learning_rate":
                                                                      [0.1, 0.5]})},
                         num_seeds=16, steps=5, key=jax.random.key(6), batch_fn=batch_fn,
                         data=(x, y), chunk_size=8, out_dir=out_dir,
                         config={"test": "network_call"})


def flat_outputs(land, net) -> dict:
    out = {}
    for name in land.optimizers:
        for k, v in land.metrics[name].items():
            out[f"land/{name}/{k}"] = np.asarray(v)
    for name in net.optimizers:
        out[f"net/{name}/loss"] = net.losses(name)
        out[f"net/{name}/final_loss"] = np.asarray(net.final[name]["final_loss"])
    return out


SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    os.environ["JAX_PLATFORMS"] = "cpu"
    sys.path.insert(0, {here!r})
    from jaxopt_lab.compare import distributed
    distributed.initialize({coord!r}, {n}, {pid}, timeout_seconds=60)
    import jax
    import numpy as np
    from jaxopt_lab.compare import store
    writes = []
    _write = store._atomic_write
    def spy(path, write):
        writes.append(path)
        return _write(path, write)
    store._atomic_write = spy
    if {slow}:
        _save = store.RunStore.save_chunk
        def slow_save(self, name, arrays, identity):
            _save(self, name, arrays, identity)
            time.sleep(1.5)
        store.RunStore.save_chunk = slow_save
    import test_multiprocess as t
    land = t.landscape_call(os.path.join({out!r}, "land"), lr={lr})
    net = t.network_call(os.path.join({out!r}, "net"))
    np.savez(os.path.join({out!r}, "p{pid}.npz"), **t.flat_outputs(land, net))
    with open(os.path.join({out!r}, "p{pid}.json"), "w") as fh:
        json.dump({{"writes": writes, "index": jax.process_index(),
                    "devices": jax.device_count(), "resumed": land.meta["resumed_chunks"],
                    "rejected": land.meta["rejected_chunks"]}}, fh)
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(n, out, slow=False, lr=0.05, lrs=None):
    coord = f"127.0.0.1:{_free_port()}"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("XLA_FLAGS", None)
    procs = []
    for pid in range(n):
        code = SCRIPT.format(here=HERE, coord=coord, n=n, pid=pid, out=str(out), slow=slow,
                             lr=(lrs[pid] if lrs else lr))
        procs.append(subprocess.Popen([sys.executable, "-c", code], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, start_new_session=True))
    return procs


def _finish(procs, timeout=150):
    """Wait for every process; kill them all on timeout or when one failed."""
    deadline = time.monotonic() + timeout
    try:
        while any(p.poll() is None for p in procs):
            if time.monotonic() > deadline or any(p.poll() not in (None, 0) for p in procs):
                break
            time.sleep(0.1)
    finally:
        _kill(procs)
    return [(p.returncode, p.stderr.read()[-3000:]) for p in procs]


def _kill(procs):
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        p.wait(timeout=30)


@pytest.fixture(scope="module")
def reference():
    return flat_outputs(landscape_call(), network_call())


@pytest.mark.parametrize("n", [2, pytest.param(4, marks=pytest.mark.slow)])
def test_processes_equal_one_process_bit_for_bit(tmp_path, reference, n):
    results = _finish(_launch(n, tmp_path))
    for code, err in results:
        assert code == 0, err
    for pid in range(n):
        got = np.load(tmp_path / f"p{pid}.npz")
        info = json.loads((tmp_path / f"p{pid}.json").read_text())
        assert info["index"] == pid and info["devices"] == 2 * n
        assert sorted(got.files) == sorted(reference)
        for k, v in reference.items():  # every process holds the full, all-gathered results
            np.testing.assert_array_equal(got[k], v, err_msg=f"process {pid}: {k}")
        if pid == 0:
            assert any(w.endswith("meta.json") for w in info["writes"])
        else:
            assert info["writes"] == []  # only process 0 touches the run directories
    assert compare.load(tmp_path / "land").records() == landscape_call().records()


@pytest.mark.slow  # the single-process SIGKILL test covers resuming; this adds processes
def test_killed_multi_process_run_resumes(tmp_path, reference):
    procs = _launch(2, tmp_path, slow=True)
    manifest = tmp_path / "land" / "manifest.json"
    deadline = time.monotonic() + 120
    try:
        while True:
            assert time.monotonic() < deadline, "no chunk was written in time"
            assert all(p.poll() in (None, 0) for p in procs), procs[0].stderr.read()[-3000:]
            try:
                if json.loads(manifest.read_text())["chunks"]:
                    break
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                pass
            time.sleep(0.05)
        os.killpg(procs[1].pid, signal.SIGKILL)  # one process dies mid-run ...
    finally:
        _kill(procs)  # ... and the others are stopped (they would wait for it)
    assert not (tmp_path / "land" / "records.csv").exists()
    results = _finish(_launch(2, tmp_path))  # restart every process: the run resumes
    for code, err in results:
        assert code == 0, err
    info = json.loads((tmp_path / "p0.json").read_text())
    assert info["resumed"] >= 1 and info["rejected"] == []
    got = np.load(tmp_path / "p1.npz")
    for k, v in reference.items():
        np.testing.assert_array_equal(got[k], v, err_msg=k)


def test_processes_that_disagree_are_told_what_differs(tmp_path):
    results = _finish(_launch(2, tmp_path, lrs=[0.05, 0.07]), timeout=120)
    for code, err in results:
        assert code != 0
        assert "disagree on: arguments" in err, err
    assert not (tmp_path / "land" / "records.csv").exists()
