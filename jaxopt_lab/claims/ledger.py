"""The ledger: which runs the chosen claims need, each run once (or reused), the verdicts.

Runs live under ``<root>/<run key>-<config hash[:10]>/`` (default root
``runs/claims-<preset>``). A directory whose ``meta.json`` exists and records the same
experiment config (its :func:`jaxopt_lab.compare.store.config_hash`) is a finished run and
is read back with :func:`jaxopt_lab.compare.load` instead of running again; anything else
is (re)run by the experiment itself, which writes the directory through
:meth:`~jaxopt_lab.compare.Results.save` (saddle escape also resumes its own chunks). So an
interrupted ``verify`` or ``report`` resumes where it stopped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from jaxopt_lab.claims.core import Claim, Verdict, evaluate
from jaxopt_lab.claims.registry import CLAIMS

PRESETS = ("quick", "full")


class Run(NamedTuple):
    """One experiment run of the ledger."""

    key: str
    experiment: str
    config: Any
    config_hash: str
    run_dir: str
    claims: tuple[str, ...]


class RunOutcome(NamedTuple):
    run: Run
    results: Any
    reused: bool
    seconds: float
    error: str | None = None


class Ledger(NamedTuple):
    """What :func:`verify` returns."""

    preset: str
    root: str
    verdicts: tuple[Verdict, ...]
    runs: tuple[RunOutcome, ...]


def ids() -> list[str]:
    """The registered claim ids, in order."""
    return [c.id for c in CLAIMS]


def get(claim_id: str) -> Claim:
    """The registered claim ``claim_id`` (case-insensitive); ValueError lists the valid ids."""
    want = str(claim_id).strip().upper()
    for c in CLAIMS:
        if c.id == want:
            return c
    raise ValueError(f"unknown claim {claim_id!r}; valid claims: {', '.join(ids())}")


def select(claim_ids: Iterable[str] | None) -> list[Claim]:
    """The claims named (all when None/empty), registry order, duplicates dropped."""
    if not claim_ids:
        return list(CLAIMS)
    chosen = {get(i).id for i in claim_ids}
    return [c for c in CLAIMS if c.id in chosen]


def default_root(preset: str) -> str:
    return os.path.join("runs", f"claims-{preset}")


def plan(claims: Sequence[Claim], preset: str, root: str) -> list[Run]:
    """The runs ``claims`` need under ``preset``: one per (experiment, config)."""
    from jaxopt_lab.compare.store import config_hash

    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
    runs: dict[str, Run] = {}
    for c in claims:
        if c.experiment is None:
            continue
        config = c.make_config(preset)
        h = config_hash(config)
        key = f"{c.run_key}-{h[:10]}"
        if key in runs:
            r = runs[key]
            runs[key] = r._replace(claims=r.claims + (c.id,))
        else:
            runs[key] = Run(key, c.experiment, config, h, os.path.join(root, key), (c.id,))
    return list(runs.values())


def recorded_config(meta: dict) -> Any:
    """The experiment config a run directory's ``meta.json`` records."""
    exp = meta.get("experiment")
    if isinstance(exp, dict) and "config" in exp:
        return exp["config"]
    return meta.get("config")


def finished(run: Run) -> bool:
    """True when ``run.run_dir`` holds a finished run of the same config."""
    import json

    from jaxopt_lab.compare.store import config_hash

    path = os.path.join(run.run_dir, "meta.json")
    if not os.path.isfile(path):
        return False
    try:
        with open(path) as fh:
            meta = json.load(fh)
    except (OSError, ValueError):
        return False
    return config_hash(recorded_config(meta)) == run.config_hash and "layout" in meta


def ensure(run: Run) -> RunOutcome:
    """Reuse ``run``'s finished directory or run the experiment into it."""
    from jaxopt_lab import compare, experiments

    t0 = time.perf_counter()
    if finished(run):
        return RunOutcome(run, compare.load(run.run_dir), True, time.perf_counter() - t0)
    module = experiments.get(run.experiment)
    results = module.run(run.config, out_dir=run.run_dir)
    return RunOutcome(run, results, False, time.perf_counter() - t0)


def verify(claim_ids: Iterable[str] | None = None, *, preset: str = "quick",
           root: str | None = None, progress: bool = False,
           on_run: Callable[[RunOutcome], None] | None = None,
           keep_going: bool = True) -> Ledger:
    """Run (or reuse) the experiments the claims need, once each, and decide every claim.

    Args:
      claim_ids: claim ids (None: every registered claim).
      preset: ``"quick"`` or ``"full"``.
      root: directory of the runs (default ``runs/claims-<preset>``).
      progress: a tqdm bar over the runs (on stderr).
      on_run: called with each :class:`RunOutcome` as it finishes.
      keep_going: an experiment that fails makes its claims ``untested`` (with the error)
        instead of stopping the ledger.

    Returns:
      :class:`Ledger`.
    """
    from jaxopt_lab.compare.store import prepare_dir

    claims = select(claim_ids)
    root = root if root is not None else default_root(preset)
    runs = plan(claims, preset, root)
    if runs:
        prepare_dir(root, "out")
    bar = None
    if progress and runs:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(runs), desc="claims", unit="experiment")
    outcomes: dict[str, RunOutcome] = {}
    for run in runs:
        if bar is not None:
            bar.set_postfix_str(run.key)
        t0 = time.perf_counter()
        try:
            out = ensure(run)
        except (ValueError, TypeError, RuntimeError, OSError, ImportError) as e:
            if not keep_going or isinstance(e, OSError):
                raise
            out = RunOutcome(run, None, False, time.perf_counter() - t0,
                             f"{type(e).__name__}: {e}")
        outcomes[run.key] = out
        if on_run is not None:
            on_run(out)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    by_claim = {cid: out for out in outcomes.values() for cid in out.run.claims}
    verdicts = []
    for c in claims:
        out = by_claim.get(c.id)
        if c.experiment is None:
            verdicts.append(evaluate(c, None))
        elif out is None or out.results is None:
            v = evaluate(c, None, out.run.run_dir if out else None)
            reason = f"the run of {c.experiment} failed: {out.error}" if out else "not run"
            verdicts.append(v._replace(reason=reason))
        else:
            verdicts.append(evaluate(c, out.results, out.run.run_dir))
    return Ledger(preset, root, tuple(verdicts), tuple(outcomes.values()))


def counts(verdicts: Iterable[Verdict]) -> dict[str, int]:
    """``{verdict: count}`` over the four verdicts."""
    from jaxopt_lab.claims.core import VERDICTS

    vs = list(verdicts)
    return {v: sum(x.verdict == v for x in vs) for v in VERDICTS}


__all__ = ["PRESETS", "Ledger", "Run", "RunOutcome", "counts", "default_root", "ensure",
           "finished", "get", "ids", "plan", "recorded_config", "select", "verify"]
