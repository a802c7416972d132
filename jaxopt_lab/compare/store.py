"""The run directory: the ONLY writer and reader of results on disk.

Layout of a run directory::

    records.csv      one row per seed of each configuration (group, hyperparameters, seed,
                     metrics); the table a user opens first
    meta.json        config, library versions, device, key, compile and run seconds,
                     resumed chunks, the summary (one schema for sweeps and experiments)
    metrics.npz      the same metrics as arrays (+ landscape trajectories), for ``read``
    curves.npz       values over training, ``[n_hparams, n_seeds, T]`` per group (when any)
    *.png            figures
    manifest.json    resumable sweeps only: config hash and the finished chunks with their
                     identity and checksum
    chunks/*.npz     resumable sweeps only: one file per (optimizer family, static group,
                     seed chunk)

Every file is written to a temporary name in the same directory, flushed, fsync-ed and
moved into place with ``os.replace`` (atomic on POSIX), so a run killed at any instant
(even SIGKILL) leaves only whole files; stray ``.tmp-*`` files of a killed run are removed
when the directory is opened again. A chunk counts as finished once the manifest lists it
with its identity (config hash, family, group, chunk index, seed range) and the SHA-256 of
its arrays; on resume each chunk file is checked against both, and one that is damaged,
swapped or copied from another run is reported by path and recomputed.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import math
import os
import platform
import tempfile
import warnings
import zipfile
import zlib
from typing import Any

import numpy as np

MANIFEST = "manifest.json"
_IDENTITY = "__identity__"


# --------------------------------------------------------------------------- primitives


def config_hash(config: Any) -> str:
    """SHA-256 of the canonical JSON of ``config``."""
    blob = json.dumps(jsonable(config), sort_keys=True, allow_nan=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def jsonable(x: Any) -> Any:
    """``x`` as plain JSON types: dataclasses and NamedTuples as dicts, arrays as lists,
    numpy scalars as Python numbers, non-finite floats as the strings ``inf``/``nan``."""
    import dataclasses

    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: jsonable(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, tuple) and hasattr(x, "_asdict"):
        return jsonable(x._asdict())
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [jsonable(v) for v in x]
    if hasattr(x, "dtype") and hasattr(x, "shape") and not isinstance(x, np.generic):
        try:
            return jsonable(np.asarray(x).tolist())
        except Exception:  # noqa: BLE001 - typed PRNG keys and other exotic arrays
            return repr(x)
    if isinstance(x, np.generic):
        return jsonable(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if x is None or isinstance(x, bool | int | float | str):
        return x
    return repr(x)


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
    data = json.dumps(jsonable(obj), indent=2, sort_keys=True).encode()
    _atomic_write(path, lambda fh: fh.write(data))


def _save_npz(path: str, arrays: dict) -> None:
    _atomic_write(path, lambda fh: np.savez(fh, **arrays))


def _clean_tmp(directory: str) -> int:
    """Remove ``.tmp-*`` files a killed run left in ``directory``; returns how many."""
    n = 0
    if not os.path.isdir(directory):
        return 0
    for name in os.listdir(directory):
        if name.startswith(".tmp-") or ".tmp." in name:
            try:
                os.unlink(os.path.join(directory, name))
                n += 1
            except OSError:
                pass
    return n


def prepare_dir(out_dir: str | os.PathLike, name: str = "out_dir") -> str:
    """Create ``out_dir`` (and its parents) or raise ValueError naming ``name`` when it is
    a file or cannot be created."""
    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"{name} must be a directory, {out_dir!r} is a file")
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise ValueError(f"{name}={out_dir!r} cannot be created: {e.strerror or e}") from None
    if not os.access(out_dir, os.W_OK):
        raise ValueError(f"{name}={out_dir!r} is not writable")
    return out_dir


# --------------------------------------------------------------------------- arrays <-> files


def flatten_arrays(tree: dict, prefix: str = "") -> dict:
    """Nested dict of arrays -> flat ``{"a/b": array}`` (keys must be strings without '/')."""
    out = {}
    for k, v in tree.items():
        if not isinstance(k, str) or "/" in k:
            raise ValueError(f"output keys must be strings without '/', got {k!r}")
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten_arrays(v, key + "/"))
        else:
            out[key] = np.asarray(v)
    return out


def unflatten_arrays(flat: dict) -> dict:
    """Inverse of :func:`flatten_arrays`."""
    out: dict = {}
    for key, v in flat.items():
        node = out
        *parents, leaf = key.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return out


def checksum(flat: dict) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of a flat dict of arrays."""
    h = hashlib.sha256()
    for k in sorted(flat):
        a = np.ascontiguousarray(flat[k])
        h.update(f"{k}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- resumable chunks


class RunStore:
    """The resumable part of a run directory: chunk files and their manifest.

    Args:
      out_dir: directory (created if missing).
      config: JSON-able run configuration; its hash keys the manifest and every chunk.
      writer: whether this process writes files (default: ``jax.process_index() == 0``, so
        under ``jax.distributed`` only process 0 writes; every process can resume).

    Raises:
      ValueError: ``out_dir`` is a file, cannot be created, or holds a run of another
        configuration.
    """

    def __init__(self, out_dir: str | os.PathLike, config: dict, *, writer: bool | None = None):
        if writer is None:
            import jax

            writer = jax.process_index() == 0
        self.writer = bool(writer)
        self.out_dir = prepare_dir(out_dir) if self.writer else os.fspath(out_dir)
        self.config = jsonable(config)
        self.hash = config_hash(self.config)
        self.chunk_dir = os.path.join(self.out_dir, "chunks")
        self.manifest_path = os.path.join(self.out_dir, MANIFEST)
        self.entries: dict[str, dict] = {}
        self.rejected: list[str] = []  # chunk files found bad on resume (recomputed)
        if self.writer:
            os.makedirs(self.chunk_dir, exist_ok=True)
            _clean_tmp(self.out_dir)
            _clean_tmp(self.chunk_dir)
        if os.path.exists(self.manifest_path):
            manifest = _read_json(self.manifest_path, "manifest")
            if manifest.get("config_hash") != self.hash:
                raise ValueError(
                    f"out_dir={self.out_dir!r} holds a run with a different configuration "
                    f"(config hash {str(manifest.get('config_hash', '?'))[:12]} != "
                    f"{self.hash[:12]}); use a new out_dir or delete it"
                )
            chunks = manifest.get("chunks", {})
            if isinstance(chunks, dict):
                self.entries = {n: e for n, e in chunks.items() if isinstance(e, dict)}
        elif self.writer:
            self._write_manifest()

    def _chunk_path(self, name: str) -> str:
        return os.path.join(self.chunk_dir, f"{name}.npz")

    def _write_manifest(self) -> None:
        if self.writer:
            atomic_write_json(self.manifest_path, {
                "config_hash": self.hash, "config": self.config, "chunks": self.entries,
            })

    def identity(self, name: str, **fields) -> dict:
        """The identity a chunk must carry: config hash, chunk name and the given fields."""
        return {"config_hash": self.hash, "chunk": name, **jsonable(fields)}

    def has_chunk(self, name: str) -> bool:
        """True if the manifest lists chunk ``name`` as finished (checked on load)."""
        return name in self.entries

    def load_chunk(self, name: str, identity: dict) -> dict | None:
        """The nested dict of arrays saved for chunk ``name``, or None when the file is
        missing, damaged, of another identity, or fails its checksum (then it is reported
        with a warning naming the file, deleted, and dropped from the manifest so the
        caller recomputes it)."""
        path = self._chunk_path(name)
        entry = self.entries.get(name)
        problem = None
        flat = None
        if entry is None:
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                flat = {k: z[k] for k in z.files}
        except FileNotFoundError:
            problem = "the file is missing"
        except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, KeyError) as e:
            problem = f"the file is damaged ({type(e).__name__}: {e})"
        if problem is None:
            stored = flat.pop(_IDENTITY, None)
            try:
                stored = None if stored is None else json.loads(str(stored))
            except json.JSONDecodeError:
                stored = None
            if stored != identity:
                problem = (f"it belongs to another chunk or run (identity {stored} != "
                           f"expected {identity})")
            elif entry.get("identity") != identity:
                problem = "the manifest lists another identity for it"
            elif checksum(flat) != entry.get("sha256"):
                problem = "its checksum does not match the manifest"
        if problem is not None:
            warnings.warn(f"run directory {self.out_dir!r}: chunk file {path!r} is not "
                          f"usable: {problem}; recomputing it", RuntimeWarning, stacklevel=2)
            self.rejected.append(path)
            self.entries.pop(name, None)
            if self.writer:
                try:
                    os.unlink(path)
                except OSError:
                    pass
                self._write_manifest()
            return None
        return unflatten_arrays(flat)

    def save_chunk(self, name: str, arrays: dict, identity: dict) -> None:
        """Write chunk ``name`` (nested dict of arrays) atomically, then list it in the
        manifest with its identity and checksum."""
        if not self.writer:
            return
        flat = flatten_arrays(arrays)
        digest = checksum(flat)
        _save_npz(self._chunk_path(name),
                  {**flat, _IDENTITY: np.asarray(json.dumps(identity, sort_keys=True))})
        self.entries[name] = {"identity": identity, "sha256": digest}
        self._write_manifest()


def _read_json(path: str, what: str) -> dict:
    try:
        with open(path) as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{what} {path!r} is not valid JSON ({e}); delete it to start "
                         "the run afresh") from None


# --------------------------------------------------------------------------- meta


@functools.cache
def _versions() -> tuple:
    import sys

    out = {"python": sys.version.split()[0], "numpy": np.__version__}
    for mod in ("jax", "jaxlib", "optax", "flax", "matplotlib", "jaxopt_lab"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            out[mod] = None
    return tuple(out.items())


def versions() -> dict:
    """Versions of Python and the libraries a run depends on."""
    return dict(_versions())


def device_info() -> dict:
    """Platform, device kind and count, process count and host of this run."""
    return dict(_device_info())


@functools.cache
def _device_info() -> tuple:
    import jax

    devs = jax.devices()
    return tuple({"platform": devs[0].platform, "kind": devs[0].device_kind,
                  "count": len(devs), "process_count": jax.process_count(),
                  "host": platform.node()}.items())


def make_meta(config: Any, *, key: Any = None, compile_seconds: float = 0.0,
              run_seconds: float = 0.0, **extra: Any) -> dict:
    """The one ``meta.json`` schema: ``config``, ``versions``, ``device``, ``key``,
    ``compile_seconds``, ``run_seconds``, ``date`` and any extra fields."""
    if key is not None and not isinstance(key, list | int):

        from jaxopt_lab._validation import key_words

        key = key_words(key).tolist()
    return {
        "config": jsonable(config),
        "versions": versions(),
        "device": device_info(),
        "key": key,
        "compile_seconds": float(compile_seconds),
        "run_seconds": float(run_seconds),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        **extra,
    }


# --------------------------------------------------------------------------- whole results


def write(out_dir: str | os.PathLike, results, figures: dict | None = None) -> str:
    """Write ``results`` as a run directory: ``records.csv``, ``metrics.npz``,
    ``curves.npz`` (when there are curves), ``meta.json`` and ``<name>.png`` per figure.

    Only process 0 writes under ``jax.distributed``. Returns the directory.
    """
    import jax

    if jax.process_index() != 0:  # under jax.distributed only process 0 touches the disk
        return os.fspath(out_dir)
    out_dir = prepare_dir(out_dir)
    _clean_tmp(out_dir)
    layout = {"optimizers": list(results.optimizers), "hparams": results.hparams,
              "group_column": results.group_column}
    metrics = {}
    for i, name in enumerate(results.optimizers):
        for k, v in results.metrics[name].items():
            metrics[f"{i}/{k}"] = np.asarray(v)
        if name in results.trajectories:
            metrics[f"{i}/__trajectories__"] = np.asarray(results.trajectories[name])
    _save_npz(os.path.join(out_dir, "metrics.npz"), metrics)
    if results.curves:
        curves = {f"{i}/{k}": np.asarray(v) for i, name in enumerate(results.optimizers)
                  for k, v in results.curves.get(name, {}).items()}
        _save_npz(os.path.join(out_dir, "curves.npz"), curves)
    results.to_csv(os.path.join(out_dir, "records.csv"))
    names = []
    for name, fig in (figures or {}).items():
        path = os.path.join(out_dir, f"{name}.png")
        tmp = os.path.join(out_dir, f".tmp-{name}.png")
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
        os.replace(tmp, path)
        names.append(f"{name}.png")
        try:
            import matplotlib.pyplot as plt

            plt.close(fig)
        except Exception:  # noqa: BLE001
            pass
    meta = dict(results.meta)
    meta["layout"] = layout
    meta["figures"] = sorted(set(meta.get("figures", [])) | set(names))
    if results.summary is not None:
        meta["summary"] = results.summary
    meta["out_dir"] = out_dir
    results.meta.update(out_dir=out_dir, figures=meta["figures"])
    atomic_write_json(os.path.join(out_dir, "meta.json"), meta)
    return out_dir


def read(run_dir: str | os.PathLike):
    """Read a run directory written by :func:`write` back into ``Results``."""
    from jaxopt_lab.compare.results import Results

    run_dir = os.fspath(run_dir)
    meta_path = os.path.join(run_dir, "meta.json")
    if not os.path.isfile(meta_path):
        raise ValueError(f"run_dir={run_dir!r} has no meta.json (not a finished run directory)")
    meta = _read_json(meta_path, "meta.json")
    layout = meta["layout"]
    labels = list(layout["optimizers"])
    metrics: dict = {n: {} for n in labels}
    trajs: dict = {}
    curves: dict = {}
    with np.load(os.path.join(run_dir, "metrics.npz"), allow_pickle=False) as z:
        for key in z.files:
            i, k = key.split("/", 1)
            name = labels[int(i)]
            if k == "__trajectories__":
                trajs[name] = z[key]
            else:
                metrics[name][k] = z[key]
    cpath = os.path.join(run_dir, "curves.npz")
    if os.path.exists(cpath):
        with np.load(cpath, allow_pickle=False) as z:
            for key in z.files:
                i, k = key.split("/", 1)
                curves.setdefault(labels[int(i)], {})[k] = z[key]
    return Results(labels, layout["hparams"], metrics, trajs, meta, curves,
                   meta.get("summary"), layout.get("group_column", "optimizer"))
