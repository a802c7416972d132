"""``Results`` of a sweep: per-trajectory metric arrays, tidy records, CSV, metadata."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from typing import Any

import numpy as np

METRIC_NAMES = ("escape_step", "hit_step", "final_value", "final_grad_norm", "nonfinite")


@dataclasses.dataclass
class Results:
    """Outcome of :func:`jaxopt_lab.compare.run`.

    Attributes:
      optimizers: optimizer names in the order given.
      hparams: optimizer -> list of hyperparameter dicts (``[{}]`` for a ready-made
        transform); index ``h`` of this list is row ``h`` of ``metrics`` / ``trajectories``.
      metrics: optimizer -> metric name -> array ``[n_hparams, n_seeds]``: ``escape_step``,
        ``hit_step`` (float32, ``inf`` = never), ``final_value``, ``final_grad_norm``
        (float32), ``nonfinite`` (bool).
      trajectories: optimizer -> ``[n_hparams, n_seeds, n_recorded, d]`` (empty dict unless
        ``record_every`` was given); recorded steps are ``0, k, 2k, ... <= steps``.
      meta: dict with ``config``, ``versions``, ``device_kind``, ``device_count``,
        ``compile_seconds``, ``run_seconds``, ``date``, cache and throughput counters.
    """

    optimizers: list
    hparams: dict
    metrics: dict
    trajectories: dict
    meta: dict

    def __repr__(self) -> str:
        configs = sum(len(self.hparams[n]) for n in self.optimizers)
        return (f"Results(optimizers={self.optimizers}, configs={configs}, "
                f"num_seeds={self.num_seeds}, compile_seconds="
                f"{self.meta.get('compile_seconds', float('nan')):.3g}, run_seconds="
                f"{self.meta.get('run_seconds', float('nan')):.3g})")

    @property
    def num_seeds(self) -> int:
        first = self.metrics[self.optimizers[0]]
        return int(first["escape_step"].shape[1])

    def hparam_columns(self) -> list:
        """Union of hyperparameter names over all optimizers, in first-seen order."""
        cols: list = []
        for name in self.optimizers:
            for h in self.hparams[name]:
                for k in h:
                    if k not in cols:
                        cols.append(k)
        return cols

    def columns(self) -> list:
        """Record keys in CSV order."""
        return ["optimizer", *self.hparam_columns(), "seed", *METRIC_NAMES]

    def records(self) -> list[dict]:
        """One dict per trajectory: optimizer, hyperparameters, seed and the metrics.

        Hyperparameter columns an optimizer lacks are absent from its records (blank in
        CSV). ``escape_step``/``hit_step`` are floats with ``inf`` for a miss.
        """
        out = []
        for name in self.optimizers:
            m = self.metrics[name]
            cols = {k: np.asarray(m[k]).tolist() for k in METRIC_NAMES}
            for h, hp in enumerate(self.hparams[name]):
                for s in range(m["escape_step"].shape[1]):
                    rec: dict[str, Any] = {"optimizer": name, **hp, "seed": s}
                    for k in METRIC_NAMES:
                        v = cols[k][h][s]
                        rec[k] = bool(v) if k == "nonfinite" else float(v)
                    out.append(rec)
        return out

    def summary(self, **kwargs) -> list[dict]:
        """:func:`jaxopt_lab.compare.stats.summarize` of these results (kwargs passed on)."""
        from jaxopt_lab.compare.stats import summarize

        return summarize(self, **kwargs)

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write :meth:`records` to ``path`` (atomically: temporary file + ``os.replace``).

        Columns are formatted per block with numpy (float32 values as their shortest
        round-trip decimal, ``inf``/``nan`` as such), so a million rows take seconds.
        """
        cols = self.columns()
        hcols = self.hparam_columns()
        tmp = f"{os.fspath(path)}.tmp.{os.getpid()}"
        with open(tmp, "w", newline="") as fh:
            fh.write(_csv_line(cols))
            for name in self.optimizers:
                m = self.metrics[name]
                n = m["escape_step"].shape[1]
                seeds = np.arange(n).astype(str)
                for h, hp in enumerate(self.hparams[name]):
                    fixed = [_csv_field(name)] + [_csv_field(hp.get(k, "")) for k in hcols]
                    block = [np.full(n, f, dtype=object) for f in fixed] + [seeds]
                    for k in METRIC_NAMES:
                        v = np.asarray(m[k][h])
                        block.append(np.where(v, "True", "False") if k == "nonfinite"
                                     else v.astype(str))
                    fh.write("".join(",".join(row) + "\r\n" for row in zip(*block, strict=True)))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> Results:
        """Rebuild a :class:`Results` from a run directory written by ``run(out_dir=...)``."""
        run_dir = os.fspath(run_dir)
        with open(os.path.join(run_dir, "meta.json")) as fh:
            meta = json.load(fh)
        layout = meta["layout"]
        arrays = np.load(os.path.join(run_dir, "metrics.npz"))
        metrics, trajs = {}, {}
        for i, name in enumerate(layout["optimizers"]):
            metrics[name] = {k: arrays[f"{i}/{k}"] for k in METRIC_NAMES}
            if f"{i}/trajectories" in arrays:
                trajs[name] = arrays[f"{i}/trajectories"]
        return cls(list(layout["optimizers"]), layout["hparams"], metrics, trajs, meta)


def _csv_field(v) -> str:
    """One CSV field, quoted by the csv module when needed."""
    buf = io.StringIO()
    csv.writer(buf).writerow([v])
    return buf.getvalue().rstrip("\r\n")


def _csv_line(values) -> str:
    buf = io.StringIO()
    csv.writer(buf).writerow(values)
    return buf.getvalue()


def read_csv(path: str | os.PathLike) -> list[dict]:
    """Read a ``records.csv`` back into records (numbers parsed, ``inf`` kept as float)."""
    out = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            rec: dict[str, Any] = {}
            for k, v in row.items():
                if v == "":
                    continue
                if k == "optimizer":
                    rec[k] = v
                elif k == "nonfinite":
                    rec[k] = v == "True"
                elif k == "seed":
                    rec[k] = int(v)
                else:
                    try:
                        rec[k] = float(v) if k in METRIC_NAMES else _parse(v)
                    except ValueError:
                        rec[k] = v
            out.append(rec)
    return out


def _parse(v: str):
    if v in ("True", "False"):
        return v == "True"
    try:
        return int(v)
    except ValueError:
        pass
    try:
        return float(v)
    except ValueError:
        return v
