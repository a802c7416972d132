"""benchmarks/accelerator.sh and benchmarks/merge_accelerator.py.

* slow: the script runs end to end on CPU (reduced sizes), exits 0, writes parseable JSON
  for every part, and merge_accelerator.py merges it into a temporary copy of RESULTS.md
  (idempotently, leaving every other section as it was).
* fast: the merge alone on a synthetic GPU run: targets marked met / missed, the section
  replaced in place on a second merge, a CPU run refused without --allow-cpu.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(REPO, "benchmarks")
PARTS = {"throughput": "throughput.json", "mlp": "networks_mlp.json",
         "curvature": "curvature.json", "gan": "gan.json", "gan_preset": "networks_gan.json",
         "continual": "networks_continual.json"}


def _merge_module():
    spec = importlib.util.spec_from_file_location(
        "merge_accelerator", os.path.join(BENCH, "merge_accelerator.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _sections(text):
    """heading -> body of every '## ' section."""
    out, cur = {}, None
    for line in text.splitlines():
        if re.match(r"## (?!#)", line):
            cur = line
            out[cur] = []
        elif cur is not None:
            out[cur].append(line)
    return {k: "\n".join(v).strip() for k, v in out.items()}


def _check_merge(run_dir, tmp_path, extra=()):
    results = tmp_path / "RESULTS.md"
    shutil.copy(os.path.join(BENCH, "RESULTS.md"), results)
    before = results.read_text()
    cmd = [sys.executable, os.path.join(BENCH, "merge_accelerator.py"), str(run_dir),
           "--results", str(results), *extra]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60)
    once = results.read_text()
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60)
    assert results.read_text() == once, "merging twice must give the same file"
    assert once.count("\n## GPU\n") == 1
    old, new = _sections(before), _sections(once)
    for heading, body in old.items():  # every other section untouched
        if heading != "## GPU":
            assert new[heading] == body, heading
    return new["## GPU"]


@pytest.mark.slow
def test_accelerator_script_runs_on_cpu_and_merges(tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, ACCEL_MODE="cpu", JAX_PLATFORMS="cpu")
    env.pop("OUT", None)
    proc = subprocess.run(["bash", os.path.join(BENCH, "accelerator.sh"), str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    acc = json.loads((out / "accelerator.json").read_text())
    assert acc["mode"] == "cpu" and acc["platform"] == "cpu"
    cpu_parts = {"throughput": "throughput.json", "networks": "networks.json",
                 "curvature": "curvature.json", "gan": "gan.json"}
    assert set(acc["parts"]) == set(cpu_parts)
    for name, js in cpu_parts.items():
        assert acc["parts"][name]["status"] == "ok", (name, acc["parts"][name])
        data = json.loads((out / js).read_text())  # parseable
        assert data
    assert (out / "accelerator.log").stat().st_size > 0
    section = _check_merge(out, tmp_path, extra=["--allow-cpu"])
    assert "CPU smoke run" in section
    assert "not measured" not in section
    # a CPU run is refused without --allow-cpu
    refused = subprocess.run([sys.executable, os.path.join(BENCH, "merge_accelerator.py"),
                              str(out), "--results", str(tmp_path / "RESULTS.md")],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "--allow-cpu" in refused.stderr


def _fake_gpu_run(d, escape_rate, hvp_ratio):
    d.mkdir()
    parts = {k: {"status": "ok", "rc": 0, "seconds": 10, "json": v, "json_written": True}
             for k, v in PARTS.items()}
    parts["continual"] = {"status": "timeout", "rc": 124, "seconds": 90,
                          "json": "networks_continual.json", "json_written": False}
    acc = {"benchmark": "accelerator", "date": "2027-01-01T00:00:00Z", "mode": "gpu",
           "backend": "gpu", "device_kind": "NVIDIA H200", "platform": "gpu",
           "device_count": 1, "jax": "0.10.2", "jaxlib": "0.10.2", "python": "3.11.7",
           "cpu_count": 16, "commit": "abc1234", "total_seconds": 400, "budget_seconds": 450,
           "driver_version": "550.54.15", "cuda_version": "12.4", "parts": parts}
    eng = [{"seeds": s, "steps": 1000, "compile_seconds": 1.0,
            "run_seconds": s * 1000 / (escape_rate * s / 1048576),
            "traj_steps_per_s": escape_rate * s / 1048576} for s in (1024, 1048576)]
    files = {
        "accelerator.json": acc,
        "throughput.json": {"saddle": {"engine": eng}},
        "networks_mlp.json": {"mlp": {
            "num_seeds": 1024, "model": "MLP 64-128-128-10 relu", "params": 26122, "steps": 500,
            "batch": 64, "cost_ratio": 3.0, "call_cost_ratio": 3.5,
            "one_seed": {"run_seconds_median": 0.1}, "many_seeds": {"run_seconds_median": 0.3}}},
        "curvature.json": {
            "model": {"sizes": [784, 2048, 2048, 2048, 10], "params": 10020874, "batch": 1024},
            "hvp_vs_grad": {"time_ratio": hvp_ratio, "hvp_seconds_median": 0.003 * hvp_ratio,
                            "grad_seconds_median": 0.003, "memory_ratio": 1.5,
                            "hvp_memory": {"total": 3 * 2**28}, "grad_memory": {"total": 2**29}},
            "lanczos_top5": {"num_iters": 30, "num_hvps": 35, "run_seconds": 0.2,
                             "first_call_seconds": 9.0, "converged": [True] * 5,
                             "eigenvalues": [50.0, 40.0, 30.0, 20.0, 10.0]}},
        "gan.json": {"seeds": 16, "steps": 200, "speedup": 9.0, "vmapped_seconds": 0.1,
                     "serial_seconds": 0.9, "remedy_cost": {
                         "none": {"seconds_per_step": 1e-4, "relative": 1.0},
                         "pack2": {"seconds_per_step": 1.2e-4, "relative": 1.2}}},
        "networks_gan.json": {"gan_preset": {
            "config": {"optimizers": ["adam"] * 6, "learning_rates": [1e-4, 1e-3],
                       "num_seeds": 16, "steps": 2000, "remedies": ["none"]},
            "full_preset": True, "gan_steps_per_s": 2e6, "run_seconds": 0.2,
            "compile_seconds": 30.0, "full_preset_remedies": 13,
            "full_preset_estimate_seconds": 600.0}},
    }
    for name, obj in files.items():
        (d / name).write_text(json.dumps(obj))
    return d


def test_merge_marks_targets_and_replaces_the_section(tmp_path):
    met = _fake_gpu_run(tmp_path / "met", escape_rate=2e10, hvp_ratio=1.8)
    section = _check_merge(met, tmp_path)
    rows = {ln.split("|")[1].strip(): ln for ln in section.splitlines()
            if ln.startswith("| ") and not ln.startswith("| measurement")}
    esc = next(v for k, v in rows.items() if k.startswith("2-D escape sweep"))
    assert "1,048,576 seeds" in esc and "2.00e10" in esc and "**met**" in esc
    assert "**met**" in next(v for k, v in rows.items() if k.startswith("1024 MLP seeds"))
    assert "**met**" in next(v for k, v in rows.items() if k.startswith("HVP / gradient time"))
    assert "NVIDIA H200" in section and "driver 550.54.15" in section and "CUDA 12.4" in section
    assert "2027-01-01" in section
    assert "continual timeout" in section  # a part that did not finish is reported
    # a second run with missed targets replaces the first section in place
    missed = _fake_gpu_run(tmp_path / "missed", escape_rate=5e9, hvp_ratio=3.0)
    results = tmp_path / "RESULTS.md"
    mod = _merge_module()
    text = mod.merge(results.read_text(), mod.build_section(str(missed)))
    assert text.count("\n## GPU\n") == 1
    gpu = _sections(text)["## GPU"]
    assert "5.00e9" in gpu and gpu.count("**missed**") == 2  # escape sweep and HVP
    assert "2.00e10" not in gpu


def test_merge_refuses_a_cpu_run_without_allow_cpu(tmp_path):
    d = _fake_gpu_run(tmp_path / "cpu", escape_rate=1e8, hvp_ratio=1.5)
    acc = json.loads((d / "accelerator.json").read_text())
    acc.update(platform="cpu", backend="cpu", mode="cpu", device_kind="cpu")
    (d / "accelerator.json").write_text(json.dumps(acc))
    mod = _merge_module()
    with pytest.raises(SystemExit, match="--allow-cpu"):
        mod.build_section(str(d))
    assert "CPU smoke run" in mod.build_section(str(d), allow_cpu=True)
