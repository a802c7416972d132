"""Run directory: atomic chunk files, SIGKILL then resume == uninterrupted, hash mismatch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import optax
import pytest

from jaxopt_lab import compare

HERE = os.path.dirname(os.path.abspath(__file__))
NUM_SEEDS, CHUNK = 12, 2  # 6 chunks


def objective(x):
    return x[0] ** 2 - x[1] ** 2 + 0.1 * x[0] * x[1] + 0.25 * x[1] ** 4


def call(out_dir=None, steps=20):
    return compare.run(
        objective, {"sgd": (optax.sgd, {"learning_rate": [0.05, 0.2], "momentum": [0.9]})},
        num_seeds=NUM_SEEDS, steps=steps, key=jax.random.key(9), dim=2,
        init=("gaussian", [0.0, 0.0], 0.1), escape_center=[0.0, 0.0], escape_radius=0.5,
        target=-0.9, chunk_size=CHUNK, out_dir=out_dir,
    )


# The child process slows down after each saved chunk so the parent can kill it mid-run.
SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {here!r})
    from jaxopt_lab.compare import store
    _save = store.RunStore.save_chunk
    def slow_save(self, name, arrays, identity):
        _save(self, name, arrays, identity)
        time.sleep(1.0)  # a wide window to kill it in, even on a loaded machine
    store.RunStore.save_chunk = slow_save
    from test_compare_store import call
    call({out!r})
    print("FINISHED")
""")


def finished_chunks(out_dir):
    try:
        with open(os.path.join(out_dir, "manifest.json")) as fh:
            return json.load(fh)["chunks"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return []


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    out = str(tmp_path / "run")
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT.format(here=HERE, out=out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not finished_chunks(out):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "child wrote no chunk in time"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    done = finished_chunks(out)
    assert 1 <= len(done) < NUM_SEEDS // CHUNK
    assert not os.path.exists(os.path.join(out, "records.csv"))  # run never finished

    reference = call()  # uninterrupted, no run directory
    resumed = call(out)
    assert resumed.meta["resumed_chunks"] == len(done)
    assert resumed.meta["chunks"] == NUM_SEEDS // CHUNK
    assert resumed.records() == reference.records()
    some_escape = any(np.isfinite(r["escape_step"]) for r in reference.records())
    assert some_escape

    # the finished directory: records.csv equals the records; Results.load round-trips
    rows = compare.read_csv(os.path.join(out, "records.csv"))
    assert len(rows) == len(reference.records())
    for a, b in zip(rows, reference.records(), strict=True):
        assert a["seed"] == b["seed"] and a["escape_step"] == b["escape_step"]
        assert a["final_value"] == pytest.approx(b["final_value"], rel=1e-6)
    loaded = compare.load(out)
    assert loaded.records() == reference.records()
    meta = json.load(open(os.path.join(out, "meta.json")))
    assert meta["config"]["steps"] == 20 and "compile_seconds" in meta

    # re-running a finished run loads every chunk and compiles nothing
    again = call(out)
    assert again.meta["resumed_chunks"] == again.meta["chunks"]
    assert again.meta["programs"] == 0 and again.records() == reference.records()

    # a different configuration refuses to resume into this directory, before compiling
    before = compare.cache_info()["compiles"]
    with pytest.raises(ValueError, match="different configuration"):
        call(out, steps=21)
    assert compare.cache_info()["compiles"] == before


def test_store_atomic_chunk_files(tmp_path):
    from jaxopt_lab.compare.store import RunStore

    s = RunStore(tmp_path, {"a": 1})
    ident = s.identity("c0", seeds=[0, 3])
    s.save_chunk("c0", {"x": np.arange(3.0), "m": {"y": np.ones(2, bool)}}, ident)
    assert s.has_chunk("c0") and not s.has_chunk("c1")
    got = s.load_chunk("c0", ident)
    np.testing.assert_array_equal(got["x"], np.arange(3.0))
    np.testing.assert_array_equal(got["m"]["y"], np.ones(2, bool))
    assert not [f for f in os.listdir(tmp_path / "chunks") if f.startswith(".tmp")]
    # a chunk file without a manifest entry (killed between the two writes) is not trusted
    os.replace(tmp_path / "chunks" / "c0.npz", tmp_path / "chunks" / "c9.npz")
    s2 = RunStore(tmp_path, {"a": 1})
    assert not s2.has_chunk("c9")
    with pytest.warns(RuntimeWarning, match="c0.npz"):  # listed, but the file is gone
        assert s2.load_chunk("c0", ident) is None
    assert not s2.has_chunk("c0")
    with pytest.raises(ValueError, match="different configuration"):
        RunStore(tmp_path, {"a": 2})
    # stray temporary files of a killed writer are removed when the directory is reopened
    (tmp_path / "chunks" / ".tmp-abc123").write_bytes(b"partial")
    RunStore(tmp_path, {"a": 1})
    assert not (tmp_path / "chunks" / ".tmp-abc123").exists()


def _chunk(out, name):
    return os.path.join(out, "chunks", f"{name}.npz")


def test_bad_chunks_are_reported_by_path_and_recomputed(tmp_path):
    """Swapped, foreign and damaged chunk files never resume into wrong records."""
    import warnings

    reference = call()
    out = str(tmp_path / "run")
    call(out)
    # 1. two chunk files swapped: identities (chunk index, seed range) no longer match
    a, b = _chunk(out, "f000-g000-c000000"), _chunk(out, "f000-g000-c000001")
    tmp = a + ".swap"
    os.replace(a, tmp), os.replace(b, a), os.replace(tmp, b)
    # 2. a damaged file (truncated: bad zip / CRC)
    c = _chunk(out, "f000-g000-c000002")
    data = open(c, "rb").read()
    open(c, "wb").write(data[: len(data) // 2])
    # 3. a chunk copied from a run with another learning rate (same file name)
    other = str(tmp_path / "other")
    compare.run(
        objective, {"sgd": (optax.sgd, {"learning_rate": [0.07, 0.2], "momentum": [0.9]})},
        num_seeds=NUM_SEEDS, steps=20, key=jax.random.key(9), dim=2,
        init=("gaussian", [0.0, 0.0], 0.1), escape_center=[0.0, 0.0], escape_radius=0.5,
        target=-0.9, chunk_size=CHUNK, out_dir=other)
    d = _chunk(out, "f000-g000-c000003")
    os.replace(_chunk(other, "f000-g000-c000003"), d)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = call(out)
    bad = {str(w.message).split("chunk file ")[1].split(" is not")[0].strip("'")
           for w in caught if "not usable" in str(w.message)}
    assert bad == {a, b, c, d}
    assert sorted(resumed.meta["rejected_chunks"]) == sorted([a, b, c, d])
    assert resumed.meta["resumed_chunks"] == NUM_SEEDS // CHUNK - 4
    assert resumed.records() == reference.records()
    # the recomputed chunks are good now: a third run resumes every chunk, silently
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = call(out)
    assert again.meta["resumed_chunks"] == NUM_SEEDS // CHUNK
    assert again.records() == reference.records()
