"""Resumable run directory: chunk files written atomically, a manifest keyed by config hash.

Layout of ``out_dir``::

    manifest.json        {"config_hash", "config", "chunks": [finished chunk names]}
    chunks/<name>.npz    one file per (optimizer family, static group, seed chunk)
    records.csv          one row per trajectory (written when the run finishes)
    metrics.npz          the same metrics as arrays (+ trajectories), for Results.load
    meta.json            config, versions, device, compile/run seconds, layout

Every file is written to a temporary name in the same directory, flushed, fsync-ed and
moved into place with ``os.replace`` (atomic on POSIX), so a run killed at any instant
(even SIGKILL) leaves only whole files. A chunk counts as finished once it is listed in
the manifest; re-running the same call resumes from those chunks and gives exactly the
records of an uninterrupted run (chunk results do not depend on what ran before them).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Any

import numpy as np

MANIFEST = "manifest.json"


def config_hash(config: dict) -> str:
    """SHA-256 of the canonical JSON of ``config``."""
    blob = json.dumps(config, sort_keys=True, default=repr, allow_nan=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _atomic_write(path: str, write) -> None:
    d = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=d)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    data = json.dumps(obj, indent=2, sort_keys=True, default=repr).encode()
    _atomic_write(path, lambda fh: fh.write(data))


class RunStore:
    """A run directory for one configuration.

    Args:
      out_dir: directory (created if missing).
      config: JSON-able run configuration; its hash keys the manifest.
      writer: whether this process writes files (default: ``jax.process_index() == 0``, so
        under ``jax.distributed`` only process 0 writes; all processes can resume).

    Raises:
      ValueError: ``out_dir`` holds a manifest written for a different configuration.
    """

    def __init__(self, out_dir: str | os.PathLike, config: dict, *, writer: bool | None = None):
        if writer is None:  # multi-host: every process reads, only process 0 writes
            import jax

            writer = jax.process_index() == 0
        self.writer = writer
        self.out_dir = os.fspath(out_dir)
        if os.path.exists(self.out_dir) and not os.path.isdir(self.out_dir):
            raise ValueError(f"out_dir={self.out_dir!r} exists and is not a directory")
        self.config = config
        self.hash = config_hash(config)
        self.chunk_dir = os.path.join(self.out_dir, "chunks")
        os.makedirs(self.chunk_dir, exist_ok=True)
        self.manifest_path = os.path.join(self.out_dir, MANIFEST)
        self.finished: list[str] = []
        if os.path.exists(self.manifest_path):
            with open(self.manifest_path) as fh:
                manifest = json.load(fh)
            if manifest.get("config_hash") != self.hash:
                raise ValueError(
                    f"out_dir={self.out_dir!r} holds a run with a different configuration "
                    f"(config hash {manifest.get('config_hash', '?')[:12]} != "
                    f"{self.hash[:12]}); use a new out_dir or delete it"
                )
            self.finished = [
                n for n in manifest.get("chunks", []) if os.path.exists(self._chunk_path(n))
            ]
        elif self.writer:
            self._write_manifest()
        self._finished_set = set(self.finished)

    def _chunk_path(self, name: str) -> str:
        return os.path.join(self.chunk_dir, f"{name}.npz")

    def _write_manifest(self) -> None:
        if not self.writer:
            return
        atomic_write_json(self.manifest_path, {
            "config_hash": self.hash, "config": self.config, "chunks": self.finished,
        })

    def has_chunk(self, name: str) -> bool:
        """True if chunk ``name`` finished in this or an earlier (interrupted) run."""
        return name in self._finished_set

    def load_chunk(self, name: str) -> dict:
        """Arrays saved for chunk ``name``."""
        with np.load(self._chunk_path(name)) as z:
            return {k: z[k] for k in z.files}

    def save_chunk(self, name: str, arrays: dict) -> None:
        """Write chunk ``name`` atomically, then record it in the manifest."""
        if not self.writer:
            return
        _atomic_write(self._chunk_path(name), lambda fh: np.savez(fh, **arrays))
        if name not in self._finished_set:
            self.finished.append(name)
            self._finished_set.add(name)
        self._write_manifest()

    def finalize(self, results) -> None:
        """Write ``records.csv``, ``metrics.npz`` and ``meta.json`` for a finished run."""
        results.meta["config_hash"] = self.hash
        results.meta["out_dir"] = self.out_dir
        results.meta["layout"] = {"optimizers": results.optimizers, "hparams": results.hparams}
        if not self.writer:
            return
        arrays = {}
        for i, name in enumerate(results.optimizers):
            for k, v in results.metrics[name].items():
                arrays[f"{i}/{k}"] = v
            if name in results.trajectories:
                arrays[f"{i}/trajectories"] = results.trajectories[name]
        _atomic_write(os.path.join(self.out_dir, "metrics.npz"),
                      lambda fh: np.savez(fh, **arrays))
        results.to_csv(os.path.join(self.out_dir, "records.csv"))
        atomic_write_json(os.path.join(self.out_dir, "meta.json"), results.meta)
