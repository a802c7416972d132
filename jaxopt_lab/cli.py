"""The ``jaxopt-lab`` command: list, compare, classify, spectrum, curvature-map, run,
diagnose, verify, report.

The CLI only parses arguments and calls the library; every library module is imported
inside the command that needs it, so ``jaxopt-lab --help`` is fast and one missing piece
does not break the other commands. Bad arguments print ONE line
``jaxopt-lab: error: <message>`` on stderr and exit with status 2 (no traceback).

Example:
  $ jaxopt-lab compare                       # saddle escape: 5 optimizers x 1024 seeds
  $ jaxopt-lab compare --quick --lr 0.01,0.05 --out runs/demo
  $ jaxopt-lab classify saddle_xy 0 0
  $ jaxopt-lab diagnose --quick --model mlp --data digits --optimizers sgd,adam
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import math
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

PROG = "jaxopt-lab"

# Main job defaults (``jaxopt-lab compare`` with no arguments).
DEFAULT_LANDSCAPE = "saddle_xy"
DEFAULT_OPTIMIZERS = ("sgd", "momentum", "adam", "rmsprop", "pgd")
DEFAULT_LR = 0.01
DEFAULT_SEEDS = 1024
DEFAULT_STEPS = 500
DEFAULT_RADIUS = 1.0
DEFAULT_INIT_SCALE = 1e-3
DEFAULT_TARGET = 1e-3  # hit when f <= f_min + target (landscapes without a saddle)
QUICK_SEEDS = 64
QUICK_STEPS = DEFAULT_STEPS  # steps cost little next to compiling


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status ``code``."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line on stderr (no usage block), exit 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise CLIError(f"{message} (see '{self.prog} --help')")


# ----------------------------------------------------------------------------- arg types


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def _float_list(text: str) -> list[float]:
    values = text.split(",")
    if not text.strip() or any(not t.strip() for t in values):
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of numbers, got {text!r}"
        )
    return [_positive_float(t.strip()) for t in values]


def _name_list(text: str) -> list[str]:
    values = [t.strip() for t in text.split(",") if t.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of names, got {text!r}")
    return values


def _int_list(text: str) -> list[int]:
    values = text.split(",")
    if not text.strip() or any(not t.strip() for t in values):
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of integers, got {text!r}")
    return [_int(t.strip()) for t in values]


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


# ----------------------------------------------------------------------------- helpers


def _load_landscape(name: str, dim: int | None):
    from jaxopt_lab import landscapes

    return _flagged(lambda: landscapes.get(name, dim=dim) if dim is not None
                    else landscapes.get(name), {"name": "LANDSCAPE", "dim": "--dim"})


def _load_for_point(name: str, dim: int | None, coords: Sequence[float]):
    """The landscape for a point: without --dim, a variable-dimension landscape (rastrigin,
    ...) takes its dimension from the number of coordinates given."""
    from jaxopt_lab import landscapes

    if dim is None and name in landscapes.names() and landscapes.takes_dim(name):
        dim = len(coords)
    return _load_landscape(name, dim)


def _point(landscape, coords: Sequence[float]):
    import numpy as np

    if len(coords) != landscape.dim:
        raise CLIError(
            f"X must have {landscape.dim} coordinates for landscape {landscape.name!r} "
            f"(dim={landscape.dim}), got {len(coords)}"
        )
    return np.asarray(coords, dtype=np.float32)


def _fmt_num(v: Any, digits: int = 4) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isinf(v):
        return "never" if v > 0 else "-inf"
    if math.isnan(v):
        return "nan"
    if v == int(v) and abs(v) < 1e9:
        return str(int(v))
    return f"{v:.{digits}g}"


def _vec(values: Any, digits: int = 5) -> str:
    import numpy as np

    return "[" + ", ".join(f"{float(v):.{digits}g}" for v in np.ravel(np.asarray(values))) + "]"


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    line = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def _png_path(flag: str, path: str) -> str:
    """The image file a ``--out``-like flag names: ``.png`` appended when it has no
    extension; its directory must exist (nothing is created behind the user's back)."""
    if os.path.isdir(path):
        raise CLIError(f"{flag} must be a file name, {path!r} is a directory")
    if not os.path.splitext(path)[1]:
        path += ".png"
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise CLIError(f"{flag}: directory {os.path.dirname(path) or '.'!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise CLIError(f"{flag}: directory {os.path.dirname(path) or '.'!r} is not writable")
    return path


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


# ----------------------------------------------------------------------------- list


def _first_sentence(text: str, width: int = 72) -> str:
    line = " ".join((text or "").split())
    cut = line.find(". ")
    line = line if cut < 0 else line[:cut + 1]
    return line if len(line) <= width else line[:width - 3] + "..."


def _landscape_rows() -> list[list[str]]:
    from jaxopt_lab import landscapes

    rows = []
    for name in landscapes.names():
        land = landscapes.get(name)
        dim = f"{land.dim} (any)" if landscapes.takes_dim(name) else str(land.dim)
        kinds: dict = {}
        for cp in land.critical_points:  # the default (low) dimension: a small catalog
            kinds[cp.kind] = kinds.get(cp.kind, 0) + 1
        catalog = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "-"
        rows.append([name, dim, catalog, _first_sentence(land.description, 60)])
    return rows


def cmd_list(args: argparse.Namespace) -> int:
    """Print the landscapes (dimension, catalog, description), optimizers and experiments."""
    import importlib

    from jaxopt_lab import experiments, optimizers

    print("landscapes:")
    print(_table(_landscape_rows(), ["name", "dim", "catalogued points", "description"]))
    print("\noptimizers:")
    print(_table([[n, optimizers.OPTIMIZERS[n].label] for n in optimizers.names()],
                 ["name", "method"]))
    print("\nexperiments ('jaxopt-lab run NAME [--quick]'; saddle_escape is 'compare'):")
    rows = []
    for name in experiments.names():
        doc = importlib.import_module(f"jaxopt_lab.experiments.{name}").__doc__ or ""
        rows.append([name, _first_sentence(doc.strip().splitlines()[0], 90)])
    print(_table(rows, ["name", "description"]))
    from jaxopt_lab.health import diagnosis

    print(f"\ndiagnosis ('jaxopt-lab diagnose [--quick]'): the five signs of being stuck "
          f"(C18): {', '.join(diagnosis.SIGN_NAMES)}; models {', '.join(diagnosis.MODELS)}; "
          f"data {', '.join(diagnosis.DATASETS)}")
    return 0


# ----------------------------------------------------------------------------- compare


def _summary_rows(rows: list[dict], event: str) -> list[list[str]]:
    """Table rows from ``compare.stats.summarize`` rows (``escape`` or ``hit`` metrics)."""
    out = []
    for r in rows:
        n = int(r["n"])
        bad = int(r.get("nonfinite", 0))
        out.append([
            str(r["optimizer"]),
            _fmt_num(r.get("learning_rate", float("nan"))),
            _fmt_num(r[f"{event}_median"]),
            f"[{_fmt_num(r[f'{event}_q25'])}, {_fmt_num(r[f'{event}_q75'])}]",
            f"{float(r[f'{event}_rate']):.3f}",
            f"[{float(r[f'{event}_rate_lo']):.3f}, {float(r[f'{event}_rate_hi']):.3f}]",
            f"{bad}/{n}" if bad else "0",
            str(n),
        ])
    return out


def _compare_config(args: argparse.Namespace):
    """The saddle-escape :class:`Config` the ``compare`` flags describe (flag names in
    every error)."""
    from jaxopt_lab.experiments import saddle_escape

    base = saddle_escape.Config.quick() if args.quick else saddle_escape.Config.full()
    over = {"landscape": args.landscape, "seed": args.seed, "radius": args.radius,
            "init_scale": args.init_scale, "trajectories": args.trajectories,
            "figures": not args.no_figures}
    for field, value in (("dim", args.dim), ("num_seeds", args.seeds), ("steps", args.steps),
                         ("target", args.target)):
        if value is not None:
            over[field] = value
    if args.optimizers is not None:
        over["optimizers"] = tuple(args.optimizers)
    if args.lr is not None:
        over["learning_rates"] = tuple(args.lr)
    if args.center is not None:
        over["center"] = tuple(args.center)
    config = _flagged(lambda: dataclasses.replace(base, **over), _COMPARE_FLAGS)
    plan = _flagged(lambda: saddle_escape.Plan(config), _COMPARE_FLAGS)
    return config, plan


# Config field -> the ``compare`` flag that sets it (errors name the flag).
_COMPARE_FLAGS = {
    "landscape": "--landscape", "dim": "--dim", "optimizers": "--optimizers",
    "learning_rates": "--lr", "num_seeds": "--seeds", "steps": "--steps",
    "radius": "--radius", "init_scale": "--init-scale", "center": "--center",
    "target": "--target", "seed": "--seed", "trajectories": "--trajectories",
    "name": "--landscape", "optimizer": "--optimizers", "learning_rate": "--lr",
}


def _flagged(fn, flags: dict):
    """Call ``fn``; a ValueError/TypeError naming a parameter is re-raised naming its flag."""
    import re

    try:
        return fn()
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        found = []
        for field, flag in flags.items():
            m = re.search(rf"(?<![\w-]){re.escape(field)}(?![\w])", msg)
            if m:
                found.append((m.start(), -len(field), m, flag))
        if found:  # the parameter named first is the one the message is about
            _, _, m, flag = min(found, key=lambda t: t[:2])
            raise CLIError(msg[:m.start()] + flag + msg[m.end():]) from None
        raise CLIError(msg) from None


def _join_processes(args: argparse.Namespace) -> None:
    """``jax.distributed.initialize`` from --coordinator/--num-processes/--process-id (or
    the environment, or a Slurm allocation), before any other JAX call."""
    from jaxopt_lab.compare import distributed

    given = [args.coordinator is not None, args.num_processes is not None,
             args.process_id is not None]
    if any(given) and not all(given):
        raise CLIError("--coordinator, --num-processes and --process-id go together: give "
                       "all three (or none)")
    _flagged(lambda: distributed.initialize(args.coordinator, args.num_processes,
                                            args.process_id),
             {"coordinator": "--coordinator", "num_processes": "--num-processes",
              "process_id": "--process-id"})


def _add_process_flags(s: argparse.ArgumentParser) -> None:
    g = s.add_argument_group(
        "several processes (hosts)",
        "run the same command in every process; all three flags, or the environment "
        "variables JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID, or a Slurm "
        "allocation of several tasks; only process 0 writes the run directory")
    g.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                   help="address of process 0's coordinator")
    g.add_argument("--num-processes", type=_positive_int, default=None, metavar="N")
    g.add_argument("--process-id", type=_int, default=None, metavar="I",
                   help="this process's index, 0..N-1")


def cmd_compare(args: argparse.Namespace) -> int:
    """Saddle escape (the main job): optimizers x learning rates x seeds on a landscape."""
    _join_processes(args)
    from jaxopt_lab.experiments import saddle_escape

    config, plan = _compare_config(args)
    out_dir = args.out if args.out is not None else saddle_escape.default_out_dir(config)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise CLIError(f"--out must be a directory, {out_dir!r} is a file")
    land = plan.landscape
    head = (f"compare: {land.name} (dim={land.dim}), optimizers {','.join(plan.names)}, "
            f"lr {','.join(f'{v:g}' for v in plan.learning_rates)}, {config.num_seeds} seeds "
            f"x {config.steps} steps; ")
    if plan.mode == "hit":
        print(head + f"no saddle catalogued: starts uniform in the bounds, success = "
              f"f <= f_min + {plan.target:g} (f_min {plan.f_min:.6g})", flush=True)
    else:
        print(head + f"starts uniform within {config.init_scale:g} of {_vec(plan.center, 4)}, "
              f"escape radius {config.radius:g}", flush=True)
    results = _flagged(lambda: saddle_escape.run(config, out_dir, progress=_stderr_is_tty()),
                       {"out_dir": "--out"})
    meta = results.meta
    if meta.get("resumed_chunks"):
        print(f"resumed {meta['resumed_chunks']} of {meta['chunks']} chunks from {out_dir}")
    for path in meta.get("rejected_chunks", []):
        print(f"warning: chunk file {path} was damaged or foreign: recomputed")
    event = plan.mode
    header = ["optimizer", "lr", f"median {event} step", "IQR", "success", "95% CI (Wilson)",
              "non-finite", "n"]
    print(_table(_summary_rows(results.summary["rows"], event), header))
    print(f"compile {float(meta['compile_seconds']):.1f} s, run {float(meta['run_seconds']):.1f} s")
    files = ["records.csv", "meta.json", *meta.get("figures", [])]
    print(f"run directory: {out_dir} ({', '.join(files)})")
    return 0


# ----------------------------------------------------------------------------- classify


def cmd_classify(args: argparse.Namespace) -> int:
    """Classify a point of a landscape by its gradient and Hessian eigenvalues."""
    from jaxopt_lab import curvature

    land = _load_for_point(args.landscape, args.dim, args.x)
    x = _point(land, args.x)
    kwargs = {}
    if args.grad_tol is not None:
        kwargs["grad_tol"] = args.grad_tol
    if args.eig_tol is not None:
        kwargs["eig_tol"] = args.eig_tol
    res = curvature.classify(land.fn, x, **kwargs)
    print(f"landscape:   {land.name} (dim={land.dim})")
    print(f"x:           {_vec(x)}")
    print(f"f(x):        {_fmt_num(float(land.fn(x)), 6)}")
    print(f"kind:        {res.kind}")
    print(f"index:       {int(res.index)}  (negative-curvature directions)")
    print(f"grad norm:   {float(res.grad_norm):.3e}")
    print(f"eigenvalues: {_vec(res.eigenvalues)}")
    return 0


# ----------------------------------------------------------------------------- spectrum


def cmd_spectrum(args: argparse.Namespace) -> int:
    """Extreme Hessian eigenvalues (Lanczos) with residuals; optionally a density plot."""
    import jax
    import numpy as np

    from jaxopt_lab import curvature

    land = _load_for_point(args.landscape, args.dim, args.x)
    x = _point(land, args.x)
    key = jax.random.key(args.seed)
    k = args.k if args.k is not None else max(1, min(3, land.dim // 2))
    if 2 * k > land.dim:  # the two ends overlap: report the whole spectrum, ascending
        which, k = "LA", land.dim
    else:
        which = "both"
    res = curvature.eigsh(land.fn, x, k=k, which=which, key=key)
    ev = np.asarray(res.eigenvalues, dtype=float)
    rs = np.asarray(res.residuals, dtype=float)
    conv = np.asarray(getattr(res, "converged", np.ones_like(ev, dtype=bool)))
    if which == "both":
        ends = ["bottom"] * k + ["top"] * k
    else:
        order = np.argsort(ev)
        ev, rs, conv = ev[order], rs[order], conv[order]
        ends = ["all"] * k
    print(f"landscape: {land.name} (dim={land.dim})  x = {_vec(x)}")
    rows = [[e, f"{v:.6g}", f"{r:.2e}", "yes" if c else "no"]
            for e, v, r, c in zip(ends, ev, rs, conv, strict=True)]
    print(_table(rows, ["end", "eigenvalue", "residual", "converged"]))
    density_path = None if args.density is None else _png_path("--density", args.density)
    if density_path is not None:
        from jaxopt_lab import plot

        sd = curvature.spectral_density(land.fn, x, key=key, num_probes=args.probes)
        plot.spectrum_plot(sd.grid, sd.density, eigenvalues=ev,
                           title=f"Hessian spectral density: {land.name}", path=density_path)
        print(f"density plot: {density_path}")
    return 0


# ----------------------------------------------------------------------------- curvature-map


def cmd_curvature_map(args: argparse.Namespace) -> int:
    """Min-eigenvalue map of a 2-D landscape with catalog critical points, saved as PNG."""
    from jaxopt_lab import curvature, plot

    land = _load_landscape(args.landscape, args.dim)
    if land.dim != 2:
        raise CLIError(f"curvature-map needs a 2-D landscape, {land.name!r} has dim={land.dim}")
    bounds = land.bounds
    if args.bounds is not None:
        xmin, xmax, ymin, ymax = args.bounds
        bounds = ([xmin, ymin], [xmax, ymax])
    path = _png_path("--out", args.out)
    cmap = curvature.curvature_map(land.fn, bounds, args.resolution)
    plot.curvature_heatmap(cmap, critical_points=land.critical_points,
                           title=f"curvature map: {land.name}", path=path)
    print(f"curvature map: {path}")
    return 0


# ----------------------------------------------------------------------------- run


def _print_summary(summary: Any, indent: str = "") -> None:
    if isinstance(summary, dict):
        for k, v in summary.items():
            if isinstance(v, dict):
                print(f"{indent}{k}:")
                _print_summary(v, indent + "  ")
            elif isinstance(v, list | tuple) and len(v) > 8:
                print(f"{indent}{k}: [{len(v)} items]")
            elif hasattr(v, "shape") and getattr(v, "size", 0) > 8:
                print(f"{indent}{k}: array{tuple(v.shape)}")
            else:
                print(f"{indent}{k}: {_fmt_num(v) if isinstance(v, float) else v}")
    else:
        print(f"{indent}{summary}")


def _experiment_names() -> list[str]:
    from jaxopt_lab import experiments

    return list(experiments.names())


def cmd_run(args: argparse.Namespace) -> int:
    """Run a registered experiment (quick or full preset) and print its summary."""
    _join_processes(args)
    from jaxopt_lab import experiments

    available = _experiment_names()
    if args.name not in available:
        raise CLIError(f"NAME must be one of {available}, got {args.name!r}")
    module = experiments.get(args.name)
    config = module.Config.quick() if args.quick else module.Config.full()
    out = args.out
    if out is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = os.path.join("runs", f"{args.name}-{stamp}")
    if os.path.exists(out) and not os.path.isdir(out):
        raise CLIError(f"--out must be a directory, {out!r} is a file")
    t0 = time.perf_counter()
    result = _flagged(lambda: module.run(config, out_dir=out), {"out_dir": "--out"})
    print(f"experiment: {args.name} ({'quick' if args.quick else 'full'}), "
          f"{time.perf_counter() - t0:.1f} s")
    _print_summary(result.summary)
    print(f"run directory: {out}")
    return 0


# ----------------------------------------------------------------------------- diagnose

# Config field -> the ``diagnose`` flag that sets it (errors name the flag).
_DIAGNOSE_FLAGS = {
    "model": "--model", "data": "--data", "optimizers": "--optimizers",
    "optimizer": "--optimizers", "learning_rates": "--lr", "num_seeds": "--seeds",
    "steps": "--steps", "batch_size": "--batch-size", "train_examples": "--train-examples",
    "seed": "--seed", "out_dir": "--out", "hidden": "--hidden", "activation": "--activation",
}


def _threshold_overrides(items: Sequence[str] | None):
    """``--threshold NAME=VALUE`` (repeatable) -> a ``DiagnosisThresholds``."""
    from jaxopt_lab.health import diagnosis

    over: dict[str, Any] = {}
    for item in items or ():
        name, sep, text = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise CLIError(f"--threshold must be NAME=VALUE, got {item!r}")
        if name not in diagnosis.THRESHOLD_NAMES:
            raise CLIError(f"--threshold: unknown name {name!r}; valid names: "
                           f"{', '.join(diagnosis.THRESHOLD_NAMES)}")
        try:
            value = float(text)
        except ValueError:
            raise CLIError(f"--threshold {name}: expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise CLIError(f"--threshold {name}: expected a finite number, got {text!r}")
        kind = type(getattr(diagnosis.DEFAULT_DIAGNOSIS_THRESHOLDS, name))
        if kind is int:
            if value != int(value):
                raise CLIError(f"--threshold {name}: expected an integer, got {text!r}")
            value = int(value)
        over[name] = value
    flags = {n: f"--threshold {n}" for n in diagnosis.THRESHOLD_NAMES}
    return _flagged(lambda: diagnosis.DiagnosisThresholds(**over), flags)


def _diagnose_config(args: argparse.Namespace):
    """The diagnosis :class:`Config` the ``diagnose`` flags describe (flag names in errors)."""
    from jaxopt_lab.health import diagnosis

    thresholds = _threshold_overrides(args.threshold)
    over: dict[str, Any] = {"model": args.model, "data": args.data, "seed": args.seed,
                            "thresholds": thresholds}
    for field, value in (("num_seeds", args.seeds), ("steps", args.steps),
                         ("batch_size", args.batch_size),
                         ("train_examples", args.train_examples)):
        if value is not None:
            over[field] = value
    if args.optimizers is not None:
        over["optimizers"] = tuple(args.optimizers)
    if args.lr is not None:
        over["learning_rates"] = tuple(args.lr)
    if args.hidden is not None:
        over["hidden"] = tuple(args.hidden)
    if args.activation is not None:
        over["activation"] = args.activation
    make = diagnosis.Config.quick if args.quick else diagnosis.Config.full
    config = _flagged(lambda: make(**over), _DIAGNOSE_FLAGS)
    if config.data == "mnist1d":
        import importlib.util

        if importlib.util.find_spec("mnist1d") is None:
            raise CLIError("--data mnist1d needs the mnist1d package (pip install mnist1d)")
    return config


def _sign_rows(diag) -> list[list[str]]:
    rows = []
    for s in diag.signs:
        per = ", ".join(f"{k} {_fmt_value(d['value'])}" + (
            f" (layer {_fmt_value(d['layer_ratio'])})"
            if math.isfinite(d.get("layer_ratio", math.nan)) else "")
            for k, d in s.detail.items()) or "-"
        rows.append([s.name, "YES" if s.fired else "no", _fmt_value(s.value),
                     f"{s.direction} {s.threshold:g}",
                     "-" if s.step is None else str(s.step), per])
    return rows


def _fmt_value(v: float) -> str:
    """A sign's evidence: ``inf`` (never measured high, e.g. no plateau window while the loss
    was still high) printed as such, not as a step."""
    if isinstance(v, float) and math.isinf(v):
        return "inf"
    return _fmt_num(v)


def cmd_diagnose(args: argparse.Namespace) -> int:
    """Train a short run over seeds and optimizers; print the five signs of being stuck."""
    import json

    config = _diagnose_config(args)
    if args.out is not None:
        _out_dir_flag(args.out)
    from jaxopt_lab.health import diagnosis

    lrs = config.lr()
    if not args.json:
        print(f"diagnose: {config.model} on {config.data}, optimizers "
              + ", ".join(f"{n} (lr {lr:g})" for n, lr in lrs.items())
              + f", {config.num_seeds} seeds x {config.steps} steps"
              + (" (quick)" if args.quick else ""), flush=True)
    t0 = time.perf_counter()
    results, diag = _flagged(lambda: diagnosis.run(config, out_dir=args.out),
                             {"out_dir": "--out"})
    seconds = time.perf_counter() - t0
    if args.json:
        print(json.dumps({"diagnosis": diag.to_dict(), "run_dir": args.out,
                          "seconds": seconds, "compile_seconds": results.meta["compile_seconds"],
                          "run_seconds": results.meta["run_seconds"],
                          "nonfinite_seeds": results.summary["nonfinite_seeds"]}, indent=1))
        return 0
    print(_table(_sign_rows(diag), ["sign", "fired", "evidence", "fires if", "step",
                                    "per optimizer (median over seeds)"]))
    print("\ntests:")
    for s in diag.signs:
        print(f"  {s.name}: {s.test}")
    print("\nremedies the lab offers (* = sign fired):")
    for s in diag.signs:
        print(f"  {'*' if s.fired else ' '} {s.name} ({diagnosis.SIGN_TITLES[s.name]}):")
        for r in s.remedies:
            print(f"      {r.what}: {r.api}")
    bad = {n: v for n, v in results.summary["nonfinite_seeds"].items() if v}
    if bad:
        print(f"non-finite seeds: {bad}")
    verdict = ("stuck signs: " + ", ".join(diag.fired)) if diag.stuck else "no sign fired"
    print(f"\n{verdict}; {seconds:.1f} s (compile {float(results.meta['compile_seconds']):.1f} "
          f"s, run {float(results.meta['run_seconds']):.1f} s)")
    if args.out is not None:
        print(f"run directory: {args.out} (records.csv, metrics.npz, curves.npz, meta.json, "
              "diagnose.png)")
    return 0


# ----------------------------------------------------------------------------- verify / report


def _ledger_rows(verdicts) -> list[list[str]]:
    from jaxopt_lab.claims import CLAIMS
    from jaxopt_lab.claims.report import interval_text

    source = {c.id: c.source for c in CLAIMS}
    rows = []
    for v in verdicts:
        src = source.get(v.claim_id, "")
        src = src if len(src) <= 32 else src[:29] + "..."
        stat = v.statistic if len(v.statistic) <= 48 else v.statistic[:45] + "..."
        pub = (v.published or "-")
        pub = pub if len(pub) <= 30 else pub[:27] + "..."
        rows.append([v.claim_id, src, stat or "-", interval_text(v), pub, v.verdict])
    return rows


def _print_ledger(ledger) -> None:
    from jaxopt_lab.claims import counts

    print(_table(_ledger_rows(ledger.verdicts),
                 ["claim", "source", "statistic", "estimate [95% CI]", "published", "verdict"]))
    n = counts(ledger.verdicts)
    print(", ".join(f"{v} {k}" for k, v in n.items()) + f" ({len(ledger.verdicts)} claims)")


def _on_run(out) -> None:
    what = "reused" if out.reused else ("FAILED: " + out.error if out.error else "ran")
    print(f"  {out.run.key}: {what} ({out.seconds:.1f} s) -> {out.run.run_dir}", flush=True)


def _claim_ids(args: argparse.Namespace) -> list[str]:
    from jaxopt_lab import claims

    for cid in args.claims:
        try:
            claims.get(cid)
        except ValueError:
            raise CLIError(f"CLAIM: unknown claim {cid!r}; valid claims: "
                           f"{', '.join(claims.ids())}") from None
    return list(args.claims)


def _out_dir_flag(path: str) -> None:
    if os.path.exists(path) and not os.path.isdir(path):
        raise CLIError(f"--out must be a directory, {path!r} is a file")


def cmd_verify(args: argparse.Namespace) -> int:
    """Run (or reuse) the experiments the chosen claims need and print the ledger."""
    from jaxopt_lab import claims

    ids = _claim_ids(args)
    preset = "full" if args.full else "quick"
    root = args.out if args.out is not None else claims.default_root(preset)
    _out_dir_flag(root)
    runs = claims.plan(claims.select(ids), preset, root)
    print(f"verify: {len(claims.select(ids))} claims, {len(runs)} experiment runs "
          f"({preset} preset) under {root}", flush=True)
    ledger = _flagged(lambda: claims.verify(ids, preset=preset, root=root,
                                            progress=_stderr_is_tty(), on_run=_on_run),
                      {"out": "--out"})
    _print_ledger(ledger)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Verify the claims and write one self-contained HTML report plus report.json."""
    from jaxopt_lab.claims import report

    ids = _claim_ids(args)
    preset = "full" if args.full else "quick"
    _out_dir_flag(args.out)
    _flagged(lambda: report.check_out_dir(args.out), {"out": "--out"})
    if args.runs is not None:
        _out_dir_flag(args.runs)
    ledger, html_path, json_path = _flagged(
        lambda: report.report(args.out, ids, preset=preset, runs_root=args.runs,
                              progress=_stderr_is_tty(), on_run=_on_run),
        {"out": "--out"})
    _print_ledger(ledger)
    print(f"report: {html_path} and {json_path}")
    return 0


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``jaxopt-lab`` (one sub-parser per command)."""
    p = _Parser(
        prog=PROG,
        description="A JAX laboratory for how optimization fails and what fixes it.",
        epilog="Main job: 'jaxopt-lab compare' (saddle escape of 5 optimizers x 1024 seeds).",
    )
    from jaxopt_lab import __version__

    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--cpu-devices", type=_positive_int, default=None, metavar="N",
                   help="on a CPU, split the seeds over N devices of one thread each "
                        "(default: one per core; 1: JAX's single device; ignored when "
                        "XLA_FLAGS sets the device count)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    s = sub.add_parser("list", help="list landscapes, optimizers and experiments")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser(
        "compare",
        help="run optimizers x seeds on a landscape; table + run directory",
        description=(
            "Run every optimizer (x every learning rate) from num-seeds starts within "
            "--init-scale of the landscape's saddle (or --center) and measure the escape step "
            "(first step with ||x - center|| > --radius). On a landscape with no catalogued "
            "saddle (e.g. rosenbrock) and no --center, starts are uniform in its bounds and "
            "the hit step (first step with f <= f_min + --target) is measured instead. Prints "
            "median/IQR step and success rate with a Wilson 95% interval; writes records.csv, "
            "meta.json and figures to the run directory."
        ),
    )
    s.add_argument("--landscape", default=DEFAULT_LANDSCAPE,
                   help=f"landscape name (default {DEFAULT_LANDSCAPE}; see 'jaxopt-lab list')")
    s.add_argument("--dim", type=_positive_int, default=None,
                   help="dimension for landscapes that take one (e.g. rastrigin)")
    s.add_argument("--optimizers", type=_name_list, default=None,
                   help="comma list of optimizer names (default " + ",".join(DEFAULT_OPTIMIZERS)
                   + ")")
    s.add_argument("--lr", type=_float_list, default=None,
                   help=f"learning rate, or a comma list for a grid (default {DEFAULT_LR})")
    s.add_argument("--seeds", type=_int, default=None,
                   help=f"trajectories per optimizer and lr (default {DEFAULT_SEEDS}, "
                   f"--quick {QUICK_SEEDS})")
    s.add_argument("--steps", type=_int, default=None,
                   help=f"optimizer steps (default {DEFAULT_STEPS})")
    s.add_argument("--radius", type=float, default=DEFAULT_RADIUS,
                   help=f"escape radius around the center (default {DEFAULT_RADIUS})")
    s.add_argument("--init-scale", type=float, default=DEFAULT_INIT_SCALE,
                   help=f"starts are uniform in a ball of this radius around the center "
                   f"(default {DEFAULT_INIT_SCALE:g}; 0 = start exactly at the center)")
    s.add_argument("--center", type=_finite_float, nargs="+", default=None, metavar="C",
                   help="escape center (default: the landscape's first catalogued saddle; "
                   "without one, starts are uniform in the bounds and success means reaching "
                   "f_min + --target)")
    s.add_argument("--target", type=_positive_float, default=None,
                   help=f"hit when f <= f_min + TARGET (default {DEFAULT_TARGET:g}); the table "
                   "reports hit steps on landscapes without a saddle")
    s.add_argument("--trajectories", type=_int, default=4,
                   help="trajectories per optimizer drawn on the contour figure (default 4)")
    s.add_argument("--out", default=None,
                   help="run directory (default runs/compare-<landscape>-<settings hash>, so "
                   "re-running the same command resumes an interrupted sweep)")
    s.add_argument("--quick", action="store_true",
                   help=f"smoke run for CI: {QUICK_SEEDS} seeds instead of {DEFAULT_SEEDS}")
    s.add_argument("--seed", type=_int, default=0, help="master PRNG seed (default 0)")
    s.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    _add_process_flags(s)
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("classify", help="classify a point: kind, eigenvalues, grad norm, index")
    s.add_argument("landscape", help="landscape name")
    s.add_argument("x", type=_finite_float, nargs="+", metavar="X", help="point coordinates")
    s.add_argument("--dim", type=_positive_int, default=None, help="landscape dimension")
    s.add_argument("--grad-tol", type=_positive_float, default=None,
                   help="gradient-norm tolerance for a critical point (library default)")
    s.add_argument("--eig-tol", type=_positive_float, default=None,
                   help="relative eigenvalue tolerance (library default)")
    s.set_defaults(func=cmd_classify)

    s = sub.add_parser("spectrum", help="top/bottom Hessian eigenvalues (Lanczos) + residuals")
    s.add_argument("landscape", help="landscape name")
    s.add_argument("x", type=_finite_float, nargs="+", metavar="X", help="point coordinates")
    s.add_argument("--dim", type=_positive_int, default=None, help="landscape dimension")
    s.add_argument("--k", type=_positive_int, default=None,
                   help="eigenvalues per end (default min(3, dim // 2)); when 2k exceeds "
                   "the dimension the whole spectrum is reported")
    s.add_argument("--density", default=None, metavar="PNG",
                   help="also estimate the spectral density (SLQ) and save its plot here")
    s.add_argument("--probes", type=_positive_int, default=8,
                   help="probe vectors for --density (default 8)")
    s.add_argument("--seed", type=_int, default=0, help="PRNG seed (default 0)")
    s.set_defaults(func=cmd_spectrum)

    s = sub.add_parser("curvature-map", help="min-eigenvalue map of a 2-D landscape (PNG)")
    s.add_argument("landscape", help="landscape name (2-D)")
    s.add_argument("--out", required=True, metavar="PNG", help="output image path")
    s.add_argument("--resolution", type=_positive_int, default=80,
                   help="grid points per axis (default 80)")
    s.add_argument("--bounds", type=_finite_float, nargs=4, default=None,
                   metavar=("XMIN", "XMAX", "YMIN", "YMAX"),
                   help="window (default: the landscape's bounds)")
    s.add_argument("--dim", type=_positive_int, default=None, help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_curvature_map)

    names = _experiment_names()
    s = sub.add_parser("run", help="run an experiment: " + ", ".join(names),
                       description="Run a failure experiment and print its summary; writes "
                       "records.csv, meta.json and figures to the run directory. Experiments: "
                       + ", ".join(names) + ".")
    s.add_argument("name", metavar="NAME", help="experiment name: " + " | ".join(names))
    s.add_argument("--quick", action="store_true", help="use the quick preset")
    s.add_argument("--out", default=None, help="run directory (default runs/<name>-<timestamp>)")
    _add_process_flags(s)
    s.set_defaults(func=cmd_run)

    s = sub.add_parser(
        "diagnose", help="is my network stuck? the five signs (C18), measured over seeds",
        description=(
            "Train a model on a dataset with each optimizer from --seeds seeds (the sweep "
            "core, health monitor every step) and print the five signs of being stuck: "
            "plateau, train/validation gap, vanishing gradient, sensitivity to the seed, "
            "disagreement between optimizers; each with its evidence, threshold, the step it "
            "fired and the remedies the lab offers. With --out, writes records.csv, "
            "metrics.npz, curves.npz, meta.json and diagnose.png."),
    )
    s.add_argument("--model", default="mlp", help="mlp | cnn (default mlp)")
    s.add_argument("--data", default="digits",
                   help="digits | fashion_mnist | mnist1d (default digits)")
    s.add_argument("--optimizers", type=_name_list, default=None,
                   help="comma list of optimizer names (default sgd,adam; see 'jaxopt-lab "
                   "list')")
    s.add_argument("--lr", type=_float_list, default=None,
                   help="one learning rate for all, or one per optimizer (default per "
                   "optimizer: sgd 0.1, adam 0.001, ...)")
    s.add_argument("--seeds", type=_int, default=None, help="seeds per optimizer (>= 2; "
                   "default 32, --quick 8)")
    s.add_argument("--steps", type=_int, default=None,
                   help="training steps (default 2000, --quick 300)")
    s.add_argument("--batch-size", type=_int, default=None, help="minibatch size (default 64)")
    s.add_argument("--hidden", type=_int_list, default=None, metavar="W1,W2,...",
                   help="MLP hidden widths / CNN channels (default 64,64 / 8,16)")
    s.add_argument("--activation", default=None,
                   help="hidden activation: relu, leaky_relu, gelu, tanh, sigmoid, linear "
                   "(default relu; a deep sigmoid MLP shows vanishing gradients)")
    s.add_argument("--train-examples", type=_int, default=None,
                   help="train on the first N examples only (a small set shows the gap)")
    s.add_argument("--threshold", action="append", default=None, metavar="NAME=VALUE",
                   help="override a threshold (repeatable): plateau_window, plateau_eps, "
                   "plateau_above, ema_decay, gap, window, grad_norm_ratio, layer_ratio, "
                   "seed_iqr, disagreement, confidence")
    s.add_argument("--seed", type=_int, default=0, help="master PRNG seed (default 0)")
    s.add_argument("--quick", action="store_true",
                   help="8 seeds x 300 steps, fast compile (under a minute)")
    s.add_argument("--out", default=None, help="run directory (default: none written)")
    s.add_argument("--json", action="store_true", help="print the diagnosis as JSON")
    s.set_defaults(func=cmd_diagnose)

    s = sub.add_parser("verify", help="test the claims ledger (C1-C26): run or reuse the "
                       "experiments, print verdicts",
                       description="Run (or reuse finished runs of) the experiments the chosen "
                       "claims need, once each, and print the ledger: claim, source, statistic "
                       "with its 95%% interval over seeds, published value, verdict.")
    s.add_argument("claims", nargs="*", metavar="CLAIM", help="claim ids (default: all)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="quick presets (default)")
    g.add_argument("--full", action="store_true", help="full presets (hours on a CPU)")
    s.add_argument("--out", default=None,
                   help="directory of the runs (default runs/claims-<preset>; re-running "
                   "reuses finished runs)")
    s.set_defaults(func=cmd_verify)

    s = sub.add_parser("report", help="verify the claims and write one self-contained HTML "
                       "report + report.json",
                       description="Verify the claims (runs under OUT/runs unless --runs; an "
                       "interrupted report resumes) and write OUT/report.html (figures "
                       "embedded) and OUT/report.json.")
    s.add_argument("claims", nargs="*", metavar="CLAIM", help="claim ids (default: all)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="quick presets (default)")
    g.add_argument("--full", action="store_true", help="full presets (hours on a CPU)")
    s.add_argument("--out", required=True, help="report directory")
    s.add_argument("--runs", default=None, help="directory of the runs (default OUT/runs)")
    s.set_defaults(func=cmd_report)
    return p


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``jaxopt-lab``; returns the exit status (0 ok, 2 bad input, 1 failure)."""
    try:
        args = build_parser().parse_args(argv)
        from jaxopt_lab.compare import devices

        devices.use_cpu_cores(args.cpu_devices)  # before any JAX computation
        return int(args.func(args) or 0)
    except CLIError as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return exc.code
    except (ValueError, TypeError) as exc:
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # unwritable run directory, disk full, ...: one line, no traceback
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except (ImportError, AttributeError) as exc:  # a library piece missing from this install
        print(f"{PROG}: error: a required component is unavailable: {_one_line(exc)}",
              file=sys.stderr)
        return 1
    except SystemExit as exc:  # --help / --version from argparse: return, don't exit
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
