"""``Results``: what every sweep and every experiment returns (metric arrays, records, meta).

One row of ``records.csv`` is one seed of one configuration: a group label (the optimizer
of a sweep, the variant of an experiment), the configuration's hyperparameters, the seed
index and that seed's scalar metrics. Metric arrays are kept as ``[n_hparams, n_seeds]``
per group, so statistics over seeds are one numpy call away.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
from typing import Any

import numpy as np

#: The per-trajectory metrics of a landscape sweep (``compare.run``).
METRIC_NAMES = ("escape_step", "hit_step", "final_value", "final_grad_norm", "nonfinite")


@dataclasses.dataclass
class Results:
    """Outcome of a sweep (:func:`jaxopt_lab.compare.run`, :func:`~jaxopt_lab.compare.train`)
    or of an experiment (``experiments.<name>.run``).

    Attributes:
      optimizers: group labels in order (optimizer names of a sweep, variant names of an
        experiment); the CSV column that holds them is ``group_column``.
      hparams: label -> list of hyperparameter dicts (``[{}]`` for a ready-made transform);
        index ``h`` of this list is row ``h`` of every metric array.
      metrics: label -> metric name -> array ``[n_hparams, n_seeds]`` (float, int or bool).
        For a landscape sweep: :data:`METRIC_NAMES` (``escape_step`` / ``hit_step`` are
        ``inf`` for a miss, never the step budget).
      trajectories: label -> ``[n_hparams, n_seeds, n_recorded, d]`` (landscape sweeps with
        ``record_every``), else empty.
      meta: the run's metadata (one schema, see :func:`jaxopt_lab.compare.store.make_meta`):
        ``config``, ``versions``, ``device``, ``key``, ``compile_seconds``, ``run_seconds``,
        ``resumed_chunks``, ...
      curves: label -> name -> array ``[n_hparams, n_seeds, T]`` of values over training
        (written to ``curves.npz``), else empty.
      summary: the experiment's summary (a JSON-able dict of statistics over seeds), or None.
      group_column: name of the label column in records (``"optimizer"`` or ``"variant"``).
    """

    optimizers: list
    hparams: dict
    metrics: dict
    trajectories: dict = dataclasses.field(default_factory=dict)
    meta: dict = dataclasses.field(default_factory=dict)
    curves: dict = dataclasses.field(default_factory=dict)
    summary: Any = None
    group_column: str = "optimizer"

    def __repr__(self) -> str:
        configs = sum(len(self.hparams[n]) for n in self.optimizers)
        return (f"Results({self.group_column}s={self.optimizers}, configs={configs}, "
                f"num_seeds={self.num_seeds}, compile_seconds="
                f"{self.meta.get('compile_seconds', float('nan')):.3g}, run_seconds="
                f"{self.meta.get('run_seconds', float('nan')):.3g})")

    @property
    def num_seeds(self) -> int:
        first = self.metrics[self.optimizers[0]]
        return int(next(iter(first.values())).shape[1]) if first else 0

    @property
    def metric_names(self) -> list:
        """Union of metric names over all groups, in first-seen order."""
        names: list = []
        for label in self.optimizers:
            names += [k for k in self.metrics[label] if k not in names]
        return names

    def hparam_columns(self) -> list:
        """Union of hyperparameter names over all groups, in first-seen order."""
        cols: list = []
        for name in self.optimizers:
            for h in self.hparams[name]:
                cols += [k for k in h if k not in cols]
        return cols

    def columns(self) -> list:
        """Record keys in CSV order."""
        return [self.group_column, *self.hparam_columns(), "seed", *self.metric_names]

    def records(self) -> list[dict]:
        """One dict per seed of each configuration: label, hyperparameters, seed, metrics.

        Hyperparameter and metric columns a group lacks are absent from its records (blank
        in CSV). Floats stay floats (``inf``/``nan`` kept), booleans stay booleans.
        """
        out = []
        for name in self.optimizers:
            m = self.metrics[name]
            cols = {k: np.asarray(v).tolist() for k, v in m.items()}
            n_seeds = next(iter(m.values())).shape[1] if m else 0
            for h, hp in enumerate(self.hparams[name]):
                for s in range(n_seeds):
                    rec: dict[str, Any] = {self.group_column: name, **hp, "seed": s}
                    for k, v in cols.items():
                        rec[k] = v[h][s]
                    out.append(rec)
        return out

    def nonfinite_seeds(self) -> dict:
        """label -> list of ``(hparam index, seed)`` whose run went non-finite (NaN/Inf)."""
        out = {}
        for name in self.optimizers:
            flag = self.metrics[name].get("nonfinite")
            if flag is None:
                continue
            hs, ss = np.nonzero(np.asarray(flag))
            out[name] = [(int(h), int(s)) for h, s in zip(hs, ss, strict=True)]
        return out

    def summary_table(self, **kwargs) -> list[dict]:
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
        mcols = self.metric_names
        tmp = f"{os.fspath(path)}.tmp.{os.getpid()}"
        with open(tmp, "w", newline="") as fh:
            fh.write(_csv_line(cols))
            for name in self.optimizers:
                m = self.metrics[name]
                if not m:
                    continue
                n = next(iter(m.values())).shape[1]
                seeds = np.arange(n).astype(str)
                for h, hp in enumerate(self.hparams[name]):
                    fixed = [_csv_field(name)] + [_csv_field(hp.get(k, "")) for k in hcols]
                    block = [np.full(n, f, dtype=object) for f in fixed] + [seeds]
                    for k in mcols:
                        block.append(_format_column(m[k][h]) if k in m else np.full(n, ""))
                    fh.write("".join(",".join(row) + "\r\n" for row in zip(*block, strict=True)))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def save(self, out_dir: str | os.PathLike, figures: dict | None = None) -> str:
        """Write this result as a run directory (see :func:`jaxopt_lab.compare.store.write`)."""
        from jaxopt_lab.compare import store

        return store.write(out_dir, self, figures)

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> Results:
        """Read a run directory written by a sweep or an experiment back into ``Results``."""
        from jaxopt_lab.compare import store

        return store.read(run_dir)


def _format_column(v) -> np.ndarray:
    v = np.asarray(v)
    if v.dtype == np.bool_:
        return np.where(v, "True", "False")
    return v.astype(str)


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
    """Read a ``records.csv`` back into records.

    Numbers are parsed (``inf``/``nan`` kept as floats), ``True``/``False`` become booleans,
    ``seed`` an int, blank fields are left out; the group label stays a string.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "records.csv")
    out = []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        label = reader.fieldnames[0] if reader.fieldnames else "optimizer"
        for row in reader:
            rec: dict[str, Any] = {}
            for k, v in row.items():
                if v == "" or v is None:
                    continue
                if k == label:
                    rec[k] = v
                elif k == "seed":
                    rec[k] = int(v)
                elif k in METRIC_NAMES and k != "nonfinite":
                    rec[k] = float(v)
                else:
                    rec[k] = _parse(v)
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
        f = float(v)
    except ValueError:
        return v
    return f if math.isfinite(f) or v.lower() in ("inf", "-inf", "nan") else v
