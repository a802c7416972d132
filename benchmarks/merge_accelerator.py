"""Merge an accelerator run (``benchmarks/accelerator.sh``) into ``benchmarks/RESULTS.md``.

Reads the JSON the run wrote (``accelerator.json`` and one file per part) and writes the
``## GPU`` section of RESULTS.md: the machine (device kind, driver and CUDA versions when
nvidia-smi reported them, jax), the date, and each figure against its target on an
H100/H200, marked met / missed:

* 2-D escape sweep: >= 1e10 trajectory-steps/s (the largest seed count run, 1,048,576);
* 1024 MLP seeds cost <= 4x one seed (``compare.train``);
* HVP <= 2.5x a gradient (time, on the 10M-parameter MLP);
* GAN 16 seeds vmapped vs serial >= 4x (the CPU table's target);

and the figures without a target (throughput per seed count, HVP memory, Lanczos top-5,
the GAN and continual full-preset throughputs). Idempotent: an existing ``## GPU``
section (up to the next ``## `` heading) is replaced; otherwise the section goes before
the first ``## `` heading. A run whose backend was not a GPU is refused unless
``--allow-cpu`` (then the section says it is a CPU smoke run at reduced sizes).

Usage::

    python benchmarks/merge_accelerator.py [RUN_DIR] [--results PATH] [--allow-cpu]
        [--print]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
HEADING = "## GPU"

TARGET_ESCAPE = 1e10  # trajectory-steps/s on the 2-D escape sweep
TARGET_MLP_RATIO = 4.0  # 1024 seeds / 1 seed
TARGET_HVP_RATIO = 2.5  # HVP time / gradient time
TARGET_GAN_SPEEDUP = 4.0  # 16 seeds vmapped vs serial


def _load(run_dir: str, name: str) -> dict | None:
    path = os.path.join(run_dir, name)
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return json.load(fh)


def _verdict(ok: bool, gpu: bool) -> str:
    v = "**met**" if ok else "**missed**"
    return v if gpu else f"{v} (CPU run; the target is for an H100/H200)"


def _networks(run_dir: str, key: str, part_file: str) -> dict | None:
    """A networks.py section: from its own part's file (GPU run), else from the file of
    the one networks.py process (CPU run)."""
    for name in (part_file, "networks.json"):
        got = (_load(run_dir, name) or {}).get(key)
        if got:
            return got
    return None


def _missing(parts: dict, name: str) -> str:
    p = parts.get(name) or parts.get("networks" if name in ("mlp", "gan_preset", "continual")
                                     else name)
    if p is None:
        return "not run"
    return f"not measured (part {p['status']}, rc {p['rc']}, {p['seconds']} s)"


def _g(x: float) -> str:
    """2 decimals in scientific notation from 1e5, whole numbers from 100, else 3 digits."""
    if abs(x) >= 1e5:
        return f"{x:.2e}".replace("e+0", "e").replace("e+", "e")
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f}" if n >= 10 * 2**20 else f"{n / 2**20:.2f}"


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=90, break_on_hyphens=False, break_long_words=False)


def build_section(run_dir: str, allow_cpu: bool = False) -> str:
    acc = _load(run_dir, "accelerator.json")
    if acc is None:
        raise SystemExit(f"{run_dir}: no accelerator.json (run benchmarks/accelerator.sh)")
    gpu = acc.get("platform") == "gpu"
    if not gpu and not allow_cpu:
        raise SystemExit(f"{run_dir}: the run's backend was '{acc.get('platform')}', not a "
                         "GPU; pass --allow-cpu to merge a CPU smoke run anyway")
    parts = acc.get("parts", {})
    rel = os.path.relpath(os.path.abspath(run_dir), REPO)
    where = f"`{rel}/`" if not rel.startswith("..") else f"`{os.path.abspath(run_dir)}`"

    # ---------------------------------------------------------------- machine line
    kind = acc.get("device_kind", "?")
    bits = [f"{acc.get('device_count', 1)} x {kind} ({acc.get('platform')})"]
    if acc.get("driver_version"):
        bits.append(f"driver {acc['driver_version']}")
    if acc.get("cuda_version"):
        bits.append(f"CUDA {acc['cuda_version']}")
    gpus = acc.get("gpus") or []
    if gpus and gpus[0].get("memory.total [MiB]"):
        bits.append(f"{gpus[0]['memory.total [MiB]']} MiB")
    bits.append(f"jax {acc.get('jax')}" + (f" / jaxlib {acc['jaxlib']}" if acc.get("jaxlib")
                                           else ""))
    bits.append(f"Python {acc.get('python')}, {acc.get('cpu_count')} host CPUs")
    lines = [HEADING, ""]
    if not gpu:
        lines += [_wrap("**CPU smoke run, not GPU figures:** no GPU backend, so "
                        "`accelerator.sh` ran every part at reduced sizes to check that it "
                        "works; the targets below are for an H100/H200 and are shown for the "
                        "format only."), ""]
    lines += [_wrap(f"**Machine:** {', '.join(bits)}. **Date:** {acc.get('date')} (commit "
                    f"{acc.get('commit') or 'unknown'}). Produced by `bash "
                    f"benchmarks/accelerator.sh` in {acc.get('total_seconds')} s (deadline "
                    f"{acc.get('budget_seconds')} s), merged by "
                    f"`benchmarks/merge_accelerator.py`; JSON in {where}."), ""]
    if gpu:
        lines += ["These figures supersede the \"no GPU column yet\" note at the top.", ""]

    rows = []  # (measurement, result, target, verdict)

    # ---------------------------------------------------------------- escape sweep
    tp = _load(run_dir, "throughput.json")
    engine = (tp or {}).get("saddle", {}).get("engine") or []
    if engine:
        big = max(engine, key=lambda r: r["seeds"])
        rate = big["traj_steps_per_s"]
        rows.append((f"2-D escape sweep (saddle, momentum SGD), {big['seeds']:,} seeds x "
                     f"{big['steps']} steps", f"{_g(rate)} trajectory-steps/s (run "
                     f"{big['run_seconds'] * 1e3:.1f} ms, compile {big['compile_seconds']:.1f} s)",
                     ">= 1e10", _verdict(rate >= TARGET_ESCAPE, gpu)))
    else:
        rows.append(("2-D escape sweep", _missing(parts, "throughput"), ">= 1e10", "-"))

    # ---------------------------------------------------------------- MLP seeds
    mlp = _networks(run_dir, "mlp", "networks_mlp.json")
    if mlp:
        n = mlp["num_seeds"]
        rows.append((f"{n} MLP seeds vs 1 seed, `compare.train` ({mlp['model']}, "
                     f"{mlp['params']:,} params, {mlp['steps']} steps, batch {mlp['batch']})",
                     f"{mlp['cost_ratio']:.2f}x ({mlp['many_seeds']['run_seconds_median']:.3f} s"
                     f" vs {mlp['one_seed']['run_seconds_median']:.3f} s; whole call "
                     f"{mlp['call_cost_ratio']:.2f}x)",
                     "<= 4x (1024 seeds)",
                     _verdict(mlp["cost_ratio"] <= TARGET_MLP_RATIO, gpu) if n >= 1024
                     else f"- ({n} seeds; the target is for 1024)"))
    else:
        rows.append(("1024 MLP seeds vs 1 seed", _missing(parts, "mlp"), "<= 4x", "-"))

    # ---------------------------------------------------------------- curvature
    cv = _load(run_dir, "curvature.json") or {}
    model = cv.get("model") or {}
    net = (f"MLP {'-'.join(map(str, model.get('sizes', [])))} ({model.get('params', 0):,} "
           f"params), batch {model.get('batch')}")
    h = cv.get("hvp_vs_grad")
    if h:
        rows.append((f"HVP / gradient time, {net}",
                     f"{h['time_ratio']:.2f}x ({h['hvp_seconds_median'] * 1e3:.2f} ms / "
                     f"{h['grad_seconds_median'] * 1e3:.2f} ms)", "<= 2.5x",
                     _verdict(h["time_ratio"] <= TARGET_HVP_RATIO, gpu)))
        if h.get("memory_ratio") is not None:
            rows.append(("HVP / gradient memory (XLA: temp + arguments + outputs)",
                         f"{h['memory_ratio']:.2f}x ({_mib(h['hvp_memory']['total'])} / "
                         f"{_mib(h['grad_memory']['total'])} MiB)", "", ""))
    else:
        rows.append(("HVP / gradient time", _missing(parts, "curvature"), "<= 2.5x", "-"))
    t5 = cv.get("lanczos_top5")
    if t5:
        vals = ", ".join(f"{v:.4g}" for v in t5["eigenvalues"])
        rows.append(("Lanczos top-5 (`eigsh`, tol 1e-3), same network",
                     f"{t5['num_iters']} steps / {t5['num_hvps']} HVPs, run "
                     f"{t5['run_seconds']:.3f} s (first call {t5['first_call_seconds']:.1f} s), "
                     f"{sum(t5['converged'])}/5 converged; eigenvalues {vals}", "", ""))
    else:
        rows.append(("Lanczos top-5", _missing(parts, "curvature"), "", ""))

    # ---------------------------------------------------------------- GAN
    gj = _load(run_dir, "gan.json")
    if gj:
        rows.append((f"GAN ring, {gj['seeds']} seeds x {gj['steps']} steps vmapped vs the "
                     "per-seed program serially",
                     f"{gj['speedup']:.2f}x ({gj['vmapped_seconds']:.3f} s vs "
                     f"{gj['serial_seconds']:.3f} s)", ">= 4x",
                     _verdict(gj["speedup"] >= TARGET_GAN_SPEEDUP, gpu)))
        costs = gj.get("remedy_cost") or {}
        if len(costs) > 1:
            rows.append(("GAN remedy cost per step vs plain",
                         ", ".join(f"{k} {v['relative']:.2f}x" for k, v in costs.items()
                                   if k != "none")
                         + f" (plain {costs['none']['seconds_per_step'] * 1e3:.3f} ms/step)",
                         "", ""))
    else:
        rows.append(("GAN vmapped vs serial", _missing(parts, "gan"), ">= 4x", "-"))
    gp = _networks(run_dir, "gan_preset", "networks_gan.json")
    if gp:
        c = gp["config"]
        rows.append((f"GAN mixtures, {'full' if gp['full_preset'] else 'reduced'}-preset "
                     f"settings: {len(c['optimizers'])} optimizers x {len(c['learning_rates'])}"
                     f" lr x {c['num_seeds']} seeds x {c['steps']} steps, remedies "
                     f"{', '.join(c['remedies'])}",
                     f"{_g(gp['gan_steps_per_s'])} GAN steps/s (run {gp['run_seconds']:.1f} s, "
                     f"compile {gp['compile_seconds']:.1f} s)"
                     + ("" if gp.get("full_preset_estimate_seconds") is None else
                        f"; whole preset ({gp['full_preset_remedies']} remedies) "
                        f"~{gp['full_preset_estimate_seconds'] / 60:.0f} min (rough lower "
                        "bound)"), "", ""))
    else:
        rows.append(("GAN mixtures full-preset throughput", _missing(parts, "gan_preset"), "",
                     "-"))
    cp = _networks(run_dir, "continual_preset", "networks_continual.json")
    if cp:
        c = cp["config"]
        rows.append((f"continual, {c['preset']}-preset settings: split {c['dataset']}, "
                     f"{c['scenario']}-incremental, {', '.join(c['methods'])} "
                     f"({c['hparam_rows']} rows) x {c['num_seeds']} seeds x {c['num_tasks']} "
                     f"tasks x {c['steps_per_task']} steps, MLP {c['hidden']}",
                     f"{_g(cp['train_steps_per_s'])} training steps/s (run "
                     f"{cp['run_seconds']:.1f} s, compile {cp['compile_seconds']:.1f} s)", "", ""))
    else:
        rows.append(("continual full-preset throughput", _missing(parts, "continual"), "", "-"))

    lines += ["| measurement | result | target | |", "|---|---|---|---|"]
    lines += [f"| {m} | {r} | {t} | {v} |" for m, r, t, v in rows]
    lines.append("")

    if len(engine) > 1:
        lines += ["Escape sweep by seed count (best of repeated warm calls; compile apart):", "",
                  "| seeds | compile (s) | run (ms) | trajectory-steps / s |",
                  "|---:|---:|---:|---:|"]
        lines += [f"| {r['seeds']:,} | {r['compile_seconds']:.2f} | "
                  f"{r['run_seconds'] * 1e3:.2f} | {_g(r['traj_steps_per_s'])} |"
                  for r in engine]
        lines.append("")
    bad = {k: v for k, v in parts.items() if v.get("status") != "ok"}
    if bad:
        lines += [_wrap("Parts that did not finish: " + "; ".join(
            f"{k} {v['status']} (rc {v['rc']}, {v['seconds']} s)" for k, v in bad.items())
            + "."), ""]
    return "\n".join(lines).rstrip() + "\n"


def merge(text: str, section: str) -> str:
    """Replace the ``## GPU`` section of ``text`` (to the next ``## `` heading) with
    ``section``, or insert it before the first ``## `` heading (else at the end)."""
    lines = text.splitlines(keepends=True)
    is_h2 = [re.match(r"## (?!#)", ln) is not None for ln in lines]
    start = next((i for i, ln in enumerate(lines) if ln.rstrip() == HEADING
                  or ln.startswith(HEADING + " ")), None)
    block = section if section.endswith("\n") else section + "\n"
    if start is not None:
        end = next((j for j in range(start + 1, len(lines)) if is_h2[j]), len(lines))
        tail = "".join(lines[end:])
        return "".join(lines[:start]) + block + ("\n" + tail if tail else "")
    first = next((i for i, h in enumerate(is_h2) if h), None)
    if first is None:
        sep = "" if text.endswith("\n\n") or not text else ("\n" if text.endswith("\n")
                                                           else "\n\n")
        return text + sep + block
    return "".join(lines[:first]) + block + "\n" + "".join(lines[first:])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", nargs="?", default=os.environ.get(
        "OUT", os.path.join(HERE, "results", "accelerator")))
    ap.add_argument("--results", default=os.path.join(HERE, "RESULTS.md"))
    ap.add_argument("--allow-cpu", action="store_true",
                    help="merge a run whose backend was not a GPU (a smoke run)")
    ap.add_argument("--print", action="store_true", help="print the section, write nothing")
    args = ap.parse_args(argv)
    section = build_section(args.run_dir, allow_cpu=args.allow_cpu)
    if args.print:
        sys.stdout.write(section)
        return section
    with open(args.results) as fh:
        text = fh.read()
    new = merge(text, section)
    with open(args.results, "w") as fh:
        fh.write(new)
    print(f"wrote the {HEADING} section of {args.results}")
    return section


if __name__ == "__main__":
    main()
