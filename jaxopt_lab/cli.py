"""The ``jaxopt-lab`` command: list, compare, classify, spectrum, curvature-map, run.

The CLI only parses arguments and calls the library; every library module is imported
inside the command that needs it, so ``jaxopt-lab --help`` is fast and one missing piece
does not break the other commands. Bad arguments print ONE line
``jaxopt-lab: error: <message>`` on stderr and exit with status 2 (no traceback).

Example:
  $ jaxopt-lab compare                       # saddle escape: 5 optimizers x 1024 seeds
  $ jaxopt-lab compare --quick --lr 0.01,0.05 --out runs/demo
  $ jaxopt-lab classify saddle_xy 0 0
"""

from __future__ import annotations

import argparse
import datetime
import json
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

    return landscapes.get(name, dim=dim) if dim is not None else landscapes.get(name)


def _load_for_point(name: str, dim: int | None, coords: Sequence[float]):
    """The landscape for a point: without --dim, a variable-dimension landscape (rastrigin,
    ...) takes its dimension from the number of coordinates given."""
    if dim is None:
        try:
            return _load_landscape(name, len(coords))
        except (ValueError, TypeError):
            pass  # fixed dimension (or unknown name): the plain load says what is wrong
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


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


# ----------------------------------------------------------------------------- list


def cmd_list(args: argparse.Namespace) -> int:
    """Print the registered landscapes, optimizers and experiments."""
    sections = []
    try:
        from jaxopt_lab import landscapes

        sections.append(("landscapes", list(landscapes.names())))
    except (ImportError, AttributeError) as exc:
        sections.append(("landscapes", [f"(unavailable: {exc})"]))
    from jaxopt_lab import optimizers

    sections.append(("optimizers", [
        f"{n:<10} {optimizers.OPTIMIZERS[n].label}" for n in optimizers.names()
    ]))
    try:
        from jaxopt_lab import experiments

        sections.append(("experiments", list(experiments.names())))
    except (ImportError, AttributeError) as exc:
        sections.append(("experiments", [f"(unavailable: {exc})"]))
    for title, items in sections:
        print(f"{title}:")
        for item in items:
            print(f"  {item}")
    return 0


# ----------------------------------------------------------------------------- compare

# Largest trajectory recording (floats) kept from the main run; above it the contour's few
# trajectories come from a second, small run instead.
_MAX_RECORDED_FLOATS = 25_000_000


def _saddle_center(land, kinds: Sequence[str] = ("saddle", "maximum")) -> Any:
    """The first catalogued saddle (else the first maximum, the 1-D analogue), or None."""
    import numpy as np

    cps = tuple(getattr(land, "critical_points", ()) or ())
    for kind in kinds:
        for cp in cps:
            if cp.kind == kind:
                return np.asarray(cp.x, dtype=np.float32).reshape(-1) + np.float32(0.0)  # no -0
    return None


def _ball_starts(center: Any, scale: float, n: int, seed: int) -> Any:
    """``n`` starts uniform in the ball of radius ``scale`` around ``center`` ([n, d])."""
    import numpy as np

    d = center.shape[0]
    rng = np.random.default_rng([seed, 0x5EED])
    z = rng.standard_normal((n, d))
    z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-30)
    rho = scale * rng.uniform(size=(n, 1)) ** (1.0 / d)
    return (center[None, :] + rho * z).astype(np.float32)


def _box_starts(lower: Any, upper: Any, n: int, seed: int) -> Any:
    """``n`` starts uniform in the box ``[lower, upper]`` ([n, d])."""
    import numpy as np

    lower, upper = (np.asarray(b, dtype=np.float64).reshape(-1) for b in (lower, upper))
    rng = np.random.default_rng([seed, 0xB0C5])
    return (lower + (upper - lower) * rng.uniform(size=(n, lower.shape[0]))).astype(np.float32)


def _summarize(records: list[dict]) -> list[dict]:
    """Per (optimizer, learning_rate) rows via compare.stats.summarize."""
    from jaxopt_lab.compare import stats

    return list(stats.summarize(records))


def _summary_rows(summary: list[dict], event: str = "escape") -> list[list[str]]:
    """Table rows from ``compare.stats.summarize`` output (``escape`` or ``hit`` metrics)."""
    rows = []
    for r in summary:
        rows.append([
            str(r["optimizer"]),
            _fmt_num(r.get("learning_rate", float("nan"))),
            _fmt_num(r[f"{event}_median"]),
            f"[{_fmt_num(r[f'{event}_q25'])}, {_fmt_num(r[f'{event}_q75'])}]",
            f"{float(r[f'{event}_rate']):.3f}",
            f"[{float(r[f'{event}_rate_lo']):.3f}, {float(r[f'{event}_rate_hi']):.3f}]",
            str(r["n"]),
        ])
    return rows


def _jsonable(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    return repr(obj)


def _compare_figures(land, results, records, lrs, args, center, out_dir, steps,
                     target=None) -> list[str]:
    import numpy as np

    from jaxopt_lab import plot

    written = []
    if center is None:  # minimum mode: steps to reach f_min + target from uniform starts
        column, what = "hit_step", "hit"
        ecdf_title = f"{land.name}: steps to reach f_min + {target:g} ({steps} steps)"
        violin_title = f"{land.name}: hit steps of the runs that reached f_min + {target:g}"
        heat_title = f"{land.name}: success rate (f <= f_min + {target:g})"
    else:
        column, what = "escape_step", "escape"
        ecdf_title = f"{land.name}: escape step ECDF (radius {args.radius:g}, {steps} steps)"
        violin_title = f"{land.name}: escape steps of the runs that escaped"
        heat_title = f"{land.name}: escape success rate"
    path = os.path.join(out_dir, f"{what}_ecdf.png")
    plot.escape_ecdf(records, column=column, horizon=steps, title=ecdf_title, path=path)
    written.append(path)
    path = os.path.join(out_dir, f"{what}_violin.png")
    plot.escape_violin(records, column=column, title=violin_title, path=path)
    written.append(path)
    if len(lrs) > 1:
        path = os.path.join(out_dir, "success_heatmap.png")
        plot.success_heatmap(records, column=column, param="learning_rate", title=heat_title,
                             path=path)
        written.append(path)
    trajs = getattr(results, "trajectories", None) or {}
    if land.dim in (1, 2) and trajs and args.trajectories > 0:
        for h, lr in enumerate(lrs):
            sel = {name: np.asarray(arr)[h] for name, arr in trajs.items()}
            name = "contour.png" if len(lrs) == 1 else f"contour-lr{lr:g}.png"
            path = os.path.join(out_dir, name)
            lower, upper = (np.asarray(b, dtype=float) for b in land.bounds)
            if center is not None:
                reach = max(args.radius * 1.6, 4 * args.init_scale)
                lower = np.maximum(lower, center - reach)
                upper = np.minimum(upper, center + reach)
            plot.contour(land, sel, bounds=(lower, upper), max_per_optimizer=args.trajectories,
                         escape=None if center is None else (center, args.radius),
                         title=f"{land.name}: {args.trajectories} trajectories per optimizer "
                         f"(lr {lr:g})", path=path)
            written.append(path)
    return written


def cmd_compare(args: argparse.Namespace) -> int:
    """Escape-time comparison of optimizers x learning rates x seeds on one landscape."""
    import numpy as np

    from jaxopt_lab import optimizers as optreg

    seeds = args.seeds if args.seeds is not None else (QUICK_SEEDS if args.quick
                                                       else DEFAULT_SEEDS)
    steps = args.steps if args.steps is not None else (QUICK_STEPS if args.quick
                                                       else DEFAULT_STEPS)
    if seeds < 1:
        raise CLIError(f"--seeds must be >= 1, got {seeds}")
    if steps < 1:
        raise CLIError(f"--steps must be >= 1, got {steps}")
    if not (math.isfinite(args.radius) and args.radius > 0):
        raise CLIError(f"--radius must be a finite number > 0, got {args.radius:g}")
    if not (math.isfinite(args.init_scale) and args.init_scale >= 0):
        raise CLIError(f"--init-scale must be a finite number >= 0, got {args.init_scale:g}")
    if args.trajectories < 0:
        raise CLIError(f"--trajectories must be >= 0, got {args.trajectories}")
    if args.optimizers is None:
        requested = [n for n in DEFAULT_OPTIMIZERS if n in optreg.names()]
    else:
        requested = args.optimizers
    names = list(dict.fromkeys(optreg.canonical(n) for n in requested))
    lrs = sorted(set(args.lr if args.lr is not None else [DEFAULT_LR]))

    if args.center is not None:
        land = _load_for_point(args.landscape, args.dim, args.center)
        center = _point(land, args.center)
    else:
        land = _load_landscape(args.landscape, args.dim)
        center = _saddle_center(land)
    f_min = getattr(land, "f_min", None)
    f_min = None if f_min is None or not math.isfinite(float(f_min)) else float(f_min)
    target = args.target
    if center is None and f_min is None:
        # e.g. the monkey saddle x^3 - 3xy^2: its critical point is degenerate, not a minimum
        center = _saddle_center(land, ("degenerate",))
    if center is None:
        # Nothing to escape from: measure how fast each optimizer reaches the global minimum
        # (f <= f_min + target) from starts uniform in the landscape's bounds.
        if f_min is None:
            raise CLIError(
                f"landscape {land.name!r} has no catalogued saddle or maximum and no known "
                f"f_min; pass --center with {land.dim} coordinates"
            )
        target = DEFAULT_TARGET if target is None else target
        starts = _box_starts(*land.bounds, seeds, args.seed)
    else:
        starts = _ball_starts(center, args.init_scale, seeds, args.seed)
    out_dir = args.out
    if out_dir is None:
        # Named by the sweep's settings, not the time: re-running the same command after an
        # interruption resumes from the finished chunks (the run store checks the config).
        from jaxopt_lab import __version__
        from jaxopt_lab.compare.store import config_hash

        ident = config_hash({
            "version": __version__, "landscape": land.name, "dim": land.dim,
            "optimizers": names, "learning_rates": lrs, "seeds": seeds, "steps": steps,
            "radius": args.radius, "init_scale": args.init_scale, "target": target,
            "center": None if center is None else center.tolist(), "seed": args.seed,
        })[:12]
        out_dir = os.path.join("runs", f"compare-{land.name}-{ident}")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise CLIError(f"--out must be a directory, {out_dir!r} is a file")

    import jax

    from jaxopt_lab import compare

    specs = optreg.grid(names, lrs)
    record_every = max(1, steps // 100)
    n_rec = steps // record_every + 1
    big = len(names) * len(lrs) * seeds * n_rec * land.dim > _MAX_RECORDED_FLOATS
    want_traj = land.dim in (1, 2) and args.trajectories > 0 and not args.no_figures
    head = (f"compare: {land.name} (dim={land.dim}), optimizers {','.join(names)}, "
            f"lr {','.join(f'{v:g}' for v in lrs)}, {seeds} seeds x {steps} steps; ")
    kwargs = dict(num_seeds=seeds, steps=steps, key=jax.random.key(args.seed), init=starts)
    if center is None:
        print(head + f"no saddle catalogued: starts uniform in the bounds, success = "
              f"f <= f_min + {target:g} (f_min {f_min:.6g})", flush=True)
    else:
        print(head + f"starts uniform within {args.init_scale:g} of {_vec(center, 4)}, "
              f"escape radius {args.radius:g}", flush=True)
        kwargs.update(escape_center=center, escape_radius=float(args.radius))
    if target is not None:
        kwargs["target"] = float(target)
    os.makedirs(out_dir, exist_ok=True)
    results = compare.run(land, specs, **kwargs, out_dir=out_dir,
                          record_every=record_every if want_traj and not big else None,
                          progress=_stderr_is_tty())
    traj_results = results
    if want_traj and big:  # keep the main run lean: a small second run for the figure
        k = min(seeds, args.trajectories)
        traj_results = compare.run(land, specs, **{**kwargs, "num_seeds": k,
                                                   "init": starts[:k]},
                                   record_every=record_every)
    records = results.records()
    records_path = os.path.join(out_dir, "records.csv")
    meta_path = os.path.join(out_dir, "meta.json")
    if not os.path.exists(records_path):
        results.to_csv(records_path)
    meta = dict(getattr(results, "meta", {}) or {})
    if os.path.exists(meta_path):
        with open(meta_path) as fh:
            meta = json.load(fh)
    meta["cli"] = {"argv": sys.argv[1:], "landscape": land.name, "optimizers": names,
                   "learning_rates": lrs, "seeds": seeds, "steps": steps,
                   "radius": args.radius, "init_scale": args.init_scale,
                   "center": None if center is None else center.tolist(),
                   "mode": "escape" if center is not None else "hit", "target": target,
                   "seed": args.seed}
    summary = _summarize(records)
    meta["summary"] = summary
    tmp = f"{meta_path}.tmp.{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(_jsonable(meta), fh, indent=2)
    os.replace(tmp, meta_path)
    event = "escape" if center is not None else "hit"
    header = ["optimizer", "lr", f"median {event} step", "IQR", "success", "95% CI (Wilson)",
              "n"]
    print(_table(_summary_rows(summary, event), header))
    figures = [] if args.no_figures else _compare_figures(
        land, traj_results, records, lrs, args,
        None if center is None else np.asarray(center, float), out_dir, steps, target)
    cs, rs = meta.get("compile_seconds"), meta.get("run_seconds")
    if cs is not None and rs is not None:
        print(f"compile {float(cs):.1f} s, run {float(rs):.1f} s")
    print(f"run directory: {out_dir} (records.csv, meta.json"
          + "".join(f", {os.path.basename(f)}" for f in figures) + ")")
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
    if args.density is not None:
        from jaxopt_lab import plot

        sd = curvature.spectral_density(land.fn, x, key=key, num_probes=args.probes)
        plot.spectrum_plot(sd.grid, sd.density, eigenvalues=ev,
                           title=f"Hessian spectral density: {land.name}", path=args.density)
        print(f"density plot: {args.density}")
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
    cmap = curvature.curvature_map(land.fn, bounds, args.resolution)
    plot.curvature_heatmap(cmap, critical_points=land.critical_points,
                           title=f"curvature map: {land.name}", path=args.out)
    print(f"curvature map: {args.out}")
    return 0


# ----------------------------------------------------------------------------- run


def _print_summary(result: Any, indent: str = "") -> None:
    if isinstance(result, dict):
        for k, v in result.items():
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
        print(f"{indent}{result}")


def cmd_run(args: argparse.Namespace) -> int:
    """Run a registered experiment (quick or full preset) and print its summary."""
    from jaxopt_lab import experiments

    try:
        available = list(experiments.names())
    except AttributeError:
        raise CLIError("the experiments registry (jaxopt_lab.experiments.names) is not "
                       "available in this installation", code=1) from None
    if args.name not in available:
        raise CLIError(f"experiment must be one of {available}, got {args.name!r}")
    module = experiments.get(args.name)
    config = module.Config.quick() if args.quick else module.Config.full()
    out = args.out
    if out is None:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = os.path.join("runs", f"{args.name}-{stamp}")
    if os.path.exists(out) and not os.path.isdir(out):
        raise CLIError(f"--out must be a directory, {out!r} is a file")
    t0 = time.perf_counter()
    result = module.run(config, out_dir=out)
    print(f"experiment: {args.name} ({'quick' if args.quick else 'full'}), "
          f"{time.perf_counter() - t0:.1f} s")
    summary = result.get("summary", result) if isinstance(result, dict) else result
    _print_summary(summary)
    print(f"run directory: {out}")
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

    s = sub.add_parser("run", help="run an experiment (see 'jaxopt-lab list')")
    s.add_argument("name", help="experiment name")
    s.add_argument("--quick", action="store_true", help="use the quick preset")
    s.add_argument("--out", default=None, help="run directory (default runs/<name>-<timestamp>)")
    s.set_defaults(func=cmd_run)
    return p


def _one_line(message: str) -> str:
    return " ".join(str(message).split())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``jaxopt-lab``; returns the exit status (0 ok, 2 bad input, 1 failure)."""
    try:
        args = build_parser().parse_args(argv)
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
