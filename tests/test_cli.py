"""End-to-end tests of the ``jaxopt-lab`` command (in-process through ``main``)."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxopt_lab import cli, optimizers

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(capsys, *argv):
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _sgd_escape_steps(starts, lr, steps, radius):
    """Oracle: serial float64 gradient descent on x^2 - y^2 + 0.1xy, first t with |x_t| > r."""
    x = np.asarray(starts, np.float64).copy()
    esc = np.full(len(x), math.inf)
    for t in range(steps + 1):
        out = (np.linalg.norm(x, axis=1) > radius) & np.isinf(esc)
        esc[out] = t
        g = np.stack([2 * x[:, 0] + 0.1 * x[:, 1], -2 * x[:, 1] + 0.1 * x[:, 0]], axis=1)
        x = x - lr * g
    return esc


def test_help_subprocess():
    proc = subprocess.run([sys.executable, "-m", "jaxopt_lab.cli", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for cmd in ("list", "compare", "classify", "spectrum", "curvature-map", "run"):
        assert cmd in proc.stdout


def test_help_and_version_return_zero(capsys):
    code, out, _ = _run(capsys, "compare", "--help")
    assert code == 0 and "--optimizers" in out and "--quick" in out
    code, out, _ = _run(capsys, "--version")
    assert code == 0 and out.startswith("jaxopt-lab ")


def test_cpu_devices_flag(capsys):
    code, _, err = _run(capsys, "--cpu-devices", "0", "list")
    assert code == 2 and "--cpu-devices" in err
    n = jax.device_count()  # the backend is started: the flag changes nothing
    code, out, _ = _run(capsys, "--cpu-devices", "2", "list")
    assert code == 0 and "saddle_xy" in out and jax.device_count() == n


def test_list(capsys):
    code, out, _ = _run(capsys, "list")
    assert code == 0
    assert "saddle_xy" in out
    for name in optimizers.names():
        assert name in out
    assert "experiments (" in out
    rows = {ln.split()[0]: ln for ln in out.splitlines() if ln.strip()}
    assert "1 saddle" in rows["saddle_xy"] and "x^2 - y^2 + 0.1 x y" in rows["saddle_xy"]
    assert "4 minimum" in rows["himmelblau"] and "4 saddle" in rows["himmelblau"]
    assert "(any)" in rows["rastrigin"]
    for name in ("saddle_escape", "explosion", "dead_units"):
        assert name in rows and len(rows[name].split()) > 3  # a description follows


def test_run_help_lists_the_experiments(capsys):
    from jaxopt_lab import experiments

    code, out, _ = _run(capsys, "run", "--help")
    assert code == 0
    for name in experiments.names():
        assert name in out


def test_cli_main_job_equals_the_readme_python_example(tmp_path, capsys):
    """README: compare.run(land, optimizers.grid(...), key=key(0), escape_radius=1.0) gives
    exactly the records of `jaxopt-lab compare` with the same settings."""
    import jax

    from jaxopt_lab import compare, landscapes

    code, _, err = _run(capsys, "compare", "--optimizers", "sgd,momentum", "--lr", "0.01,0.05",
                        "--seeds", "16", "--steps", "120", "--no-figures",
                        "--out", str(tmp_path / "cli"))
    assert code == 0, err
    land = landscapes.get("saddle_xy")
    opts = optimizers.grid(["sgd", "momentum"], [0.01, 0.05])
    res = compare.run(land, opts, num_seeds=16, steps=120, key=jax.random.key(0),
                      escape_radius=1.0)
    assert compare.read_csv(tmp_path / "cli") == compare.read_csv(_csv(res, tmp_path))
    assert compare.load(tmp_path / "cli").records() == res.records()


def _csv(res, tmp_path):
    path = tmp_path / "py.csv"
    res.to_csv(path)
    return path


def test_optimizer_registry():
    assert optimizers.canonical("SGD+momentum") == "momentum"
    assert optimizers.canonical("Adam") == "adam"
    with pytest.raises(ValueError, match="'nadamw_x'"):
        optimizers.canonical("nadamw_x")
    with pytest.raises(ValueError, match="learning_rate"):
        optimizers.get("sgd", 0.0)
    import jax.numpy as jnp
    import optax

    # momentum entry == optax.sgd(lr, momentum=0.9): same two updates
    a, b = optimizers.get("momentum", 0.1), optax.sgd(0.1, momentum=0.9)
    x, g = jnp.ones(2), jnp.array([1.0, -2.0])
    sa, sb = a.init(x), b.init(x)
    for _ in range(2):
        ua, sa = a.update(g, sa, x)
        ub, sb = b.update(g, sb, x)
        np.testing.assert_allclose(ua, ub)


def test_compare_end_to_end(tmp_path, capsys):
    out_dir = tmp_path / "run"
    steps, seeds, radius = 120, 12, 1.0
    code, out, err = _run(
        capsys, "compare", "--quick", "--optimizers", "sgd,pgd", "--lr", "0.1,0.2",
        "--seeds", str(seeds), "--steps", str(steps), "--radius", str(radius),
        "--center", "0", "0", "--seed", "3", "--trajectories", "2", "--out", str(out_dir),
    )
    assert code == 0, err
    # table: one row per optimizer x lr, with a success rate and a Wilson CI
    rows = [ln.split() for ln in out.splitlines() if ln.startswith(("sgd ", "pgd "))]
    assert [(r[0], r[1]) for r in rows] == [("sgd", "0.1"), ("sgd", "0.2"), ("pgd", "0.1"),
                                            ("pgd", "0.2")]
    assert "95% CI (Wilson)" in out and "run directory:" in out
    with open(out_dir / "records.csv", newline="") as fh:
        recs = list(csv.DictReader(fh))
    assert len(recs) == 2 * 2 * seeds
    meta = json.loads((out_dir / "meta.json").read_text())
    cfg = meta["experiment"]["config"]
    assert cfg["optimizers"] == ["sgd", "pgd"] and cfg["steps"] == steps
    assert len(meta["summary"]["rows"]) == 4
    for name in ("escape_ecdf.png", "escape_violin.png", "success_heatmap.png",
                 "contour-lr0.1.png", "contour-lr0.2.png"):
        assert (out_dir / name).read_bytes()[:8] == PNG_MAGIC
    # oracle: SGD escape steps equal a serial float64 loop from the same starts; seed i's
    # start is uniform in the ball, drawn from fold_in(fold_in(key(3), i), 0)
    starts = _starts("ball", np.zeros(2), np.full(2, 1e-3), seeds, 3)
    assert np.all(np.linalg.norm(starts, axis=1) <= 1e-3 * (1 + 1e-6))
    assert np.all(np.linalg.norm(starts, axis=1) > 0)
    for lr in (0.1, 0.2):
        got = np.array([float(r["escape_step"]) for r in recs
                        if r["optimizer"] == "sgd" and float(r["learning_rate"]) == lr])
        want = _sgd_escape_steps(starts, lr, steps, radius)
        assert np.all(np.isfinite(want))
        np.testing.assert_allclose(got, want, atol=1.0)  # float32 vs float64: +-1 step


def test_compare_from_exact_saddle_only_pgd_escapes(tmp_path, capsys):
    # same shapes as test_compare_end_to_end: the compiled programs are reused
    code, out, err = _run(
        capsys, "compare", "--quick", "--optimizers", "sgd,pgd", "--lr", "0.1,0.2", "--seeds",
        "12", "--steps", "120", "--init-scale", "0", "--center", "0", "0",
        "--trajectories", "2", "--out", str(tmp_path / "r"),
    )
    assert code == 0, err
    rates = {(ln.split()[0], ln.split()[1]): float(ln.split()[-5]) for ln in out.splitlines()
             if ln.startswith(("sgd ", "pgd "))}
    # the gradient is exactly zero at the saddle: only the perturbation moves
    assert rates == {("sgd", "0.1"): 0.0, ("sgd", "0.2"): 0.0, ("pgd", "0.1"): 1.0,
                     ("pgd", "0.2"): 1.0}
    assert "never" in out


def test_compare_without_saddle_measures_hit_steps(tmp_path, capsys):
    # rosenbrock has no saddle: uniform starts in the bounds, success = f <= f_min + target
    seeds, steps, lr, target = 8, 60, 1e-4, 5.0
    code, out, err = _run(
        capsys, "compare", "--landscape", "rosenbrock", "--optimizers", "sgd", "--lr", str(lr),
        "--seeds", str(seeds), "--steps", str(steps), "--target", str(target), "--seed", "1",
        "--no-figures", "--out", str(tmp_path / "r"),
    )
    assert code == 0, err
    assert "median hit step" in out and "f_min + 5" in out
    with open(tmp_path / "r" / "records.csv", newline="") as fh:
        got = np.array([float(r["hit_step"]) for r in csv.DictReader(fh)])
    # oracle: serial float64 gradient descent on (1 - x)^2 + 100 (y - x^2)^2
    x = _starts("uniform", np.full(2, -2.048), np.full(2, 2.048), seeds, 1).astype(np.float64)
    assert np.all(np.abs(x) <= 2.048)
    want = np.full(seeds, math.inf)
    for t in range(steps + 1):
        f = (1 - x[:, 0]) ** 2 + 100 * (x[:, 1] - x[:, 0] ** 2) ** 2
        want[(f <= target) & np.isinf(want)] = t
        r = x[:, 1] - x[:, 0] ** 2
        x = x - lr * np.stack([-2 * (1 - x[:, 0]) - 400 * x[:, 0] * r, 200 * r], axis=1)
    assert np.any(np.isfinite(want)) and np.any(np.isinf(want))
    assert np.array_equal(np.isinf(got), np.isinf(want))
    np.testing.assert_allclose(got[np.isfinite(got)], want[np.isfinite(want)], atol=1.0)


def test_compare_default_run_directory_resumes_the_same_command(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ("compare", "--landscape", "rosenbrock", "--optimizers", "sgd", "--lr", "1e-4",
            "--seeds", "8", "--steps", "60", "--target", "5", "--seed", "1", "--no-figures")
    code, out1, err = _run(capsys, *argv)
    assert code == 0, err
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("compare-rosenbrock-")
    records = (runs[0] / "records.csv").read_text()
    code, out2, err = _run(capsys, *argv)  # same command: same directory, chunks reused
    assert code == 0, err
    assert list((tmp_path / "runs").iterdir()) == runs
    assert json.loads((runs[0] / "meta.json").read_text())["resumed_chunks"] >= 1
    assert (runs[0] / "records.csv").read_text() == records
    code, _, err = _run(capsys, *argv, "--seed", "2")  # other settings: a new directory
    assert code == 0, err
    assert len(list((tmp_path / "runs").iterdir())) == 2


def test_output_path_errors_are_one_line(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    # an existing file as the run directory: refused before the experiment runs
    code, out, err = _run(capsys, "run", "explosion", "--quick", "--out", str(blocker))
    assert code == 2 and out == "" and "is a file" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    # an image below a file or in a missing directory: one line naming the flag, nothing
    # created behind the user's back
    for out_path in (blocker / "sub" / "map.png", tmp_path / "missing" / "map.png"):
        code, out, err = _run(capsys, "curvature-map", "saddle_xy", "--resolution", "4",
                              "--out", str(out_path))
        assert code == 2 and "Traceback" not in err and "--out" in err
        assert len(err.strip().splitlines()) == 1 and err.startswith("jaxopt-lab: error:")
    assert not (tmp_path / "missing").exists()
    code, _, err = _run(capsys, "spectrum", "saddle_xy", "0.1", "0.2", "--density",
                        str(tmp_path / "missing" / "d.png"))
    assert code == 2 and "--density" in err and not (tmp_path / "missing").exists()
    # a name without an extension: the file written is NAME.png, and that is what is reported
    code, out, err = _run(capsys, "curvature-map", "saddle_xy", "--resolution", "4",
                          "--out", str(tmp_path / "afile"))
    assert code == 0, err
    assert (tmp_path / "afile.png").read_bytes()[:8] == PNG_MAGIC
    assert not (tmp_path / "afile").exists() and f"{tmp_path / 'afile.png'}" in out


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["compare", "--optimizers", "sgd,foo"], "'foo'"),
        (["compare", "--seeds", "0"], "--seeds"),
        (["compare", "--steps", "-5"], "--steps"),
        (["compare", "--radius", "0"], "--radius"),
        (["compare", "--radius", "-1"], "--radius"),
        (["compare", "--landscape", "no_such_landscape"], "no_such_landscape"),
        (["compare", "--lr", "0"], "--lr"),
        (["compare", "--lr", "fast"], "--lr"),
        (["compare", "--lr", "0.1,,0.2"], "--lr"),
        (["compare", "--target", "-1"], "--target"),
        (["compare", "--center", "0"], "2 coordinates"),
        (["classify", "saddle_xy", "0"], "2 coordinates"),
        (["spectrum", "saddle_xy", "0", "zero"], "zero"),
        (["frobnicate"], "frobnicate"),
        (["run", "no_such_experiment"], "no_such_experiment"),
        (["compare", "--coordinator", "localhost:1"], "--num-processes"),
        (["compare", "--coordinator", "localhost", "--num-processes", "2", "--process-id",
          "0"], "--coordinator"),
        (["run", "explosion", "--coordinator", "h:1", "--num-processes", "2",
          "--process-id", "2"], "--process-id"),
    ],
)
def test_bad_arguments_one_line_no_traceback(capsys, argv, fragment):
    code, out, err = _run(capsys, *argv)
    if argv[:2] == ["run", "no_such_experiment"] and code == 1:
        fragment = "experiments"  # registry not installed yet: still one clear line
    else:
        assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("jaxopt-lab: error:")
    assert fragment in lines[0]
    assert "Traceback" not in err and out == ""


def test_classify_catalog_points(capsys):
    from jaxopt_lab import landscapes

    code, out, _ = _run(capsys, "classify", "saddle_xy", "0", "0")
    assert code == 0
    assert "kind:        saddle" in out and "index:       1" in out
    ev = [float(v) for v in out.split("eigenvalues: [")[1].split("]")[0].split(",")]
    np.testing.assert_allclose(ev, [-math.sqrt(4.01), math.sqrt(4.01)], rtol=1e-4)
    # a catalogued point of each kind (himmelblau: 4 minima, 4 saddles, 1 maximum)
    land = landscapes.get("himmelblau")
    points = {cp.kind: cp.x for cp in land.critical_points}
    points.setdefault("minimum", np.array([3.0, 2.0]))
    for kind, x in sorted(points.items()):
        code, out, _ = _run(capsys, "classify", "himmelblau", *map(repr, map(float, x)),
                            "--grad-tol", "1e-3")
        assert code == 0
        assert f"kind:        {kind}" in out


def test_spectrum_eigenvalues_and_density(tmp_path, capsys):
    path = tmp_path / "density.png"
    code, out, err = _run(capsys, "spectrum", "saddle_xy", "0.3", "-0.2", "--density",
                          str(path), "--probes", "2")
    assert code == 0, err
    rows = [ln.split() for ln in out.splitlines() if ln.startswith(("bottom", "top"))]
    ev = {r[0]: float(r[1]) for r in rows}
    # Hessian is constant [[2, 0.1], [0.1, -2]]: eigenvalues +-sqrt(4.01)
    assert ev["bottom"] == pytest.approx(-math.sqrt(4.01), rel=1e-4)
    assert ev["top"] == pytest.approx(math.sqrt(4.01), rel=1e-4)
    assert all(float(r[2]) < 1e-3 for r in rows)  # residuals
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_spectrum_k_covering_the_dimension_reports_whole_spectrum(capsys):
    # README example: 2k = 4 > dim = 2, so both eigenvalues are reported, ascending
    code, out, err = _run(capsys, "spectrum", "rosenbrock", "1", "1", "--k", "2")
    assert code == 0, err
    got = [float(ln.split()[1]) for ln in out.splitlines() if ln.startswith("all ")]
    want = np.linalg.eigvalsh(np.array([[802.0, -400.0], [-400.0, 200.0]]))  # closed form
    np.testing.assert_allclose(got, want, rtol=1e-3)


def test_classify_takes_the_dimension_from_the_point(capsys):
    # rastrigin has a variable dimension: 3 coordinates mean dim=3 without --dim
    code, out, err = _run(capsys, "classify", "rastrigin", "0", "0", "0")
    assert code == 0, err
    assert "dim=3" in out and "kind:        minimum" in out
    ev = [float(v) for v in out.split("eigenvalues:")[1].strip(" []\n").split(",")]
    np.testing.assert_allclose(ev, [2 + 40 * math.pi**2] * 3, rtol=1e-3)  # 2 + 10 (2 pi)^2
    code, _, err = _run(capsys, "classify", "saddle_xy", "0", "0", "0")  # fixed dimension
    assert code == 2 and "2 coordinates" in err


def test_curvature_map_png(tmp_path, capsys):
    from jaxopt_lab import curvature

    if not hasattr(curvature, "curvature_map"):
        pytest.skip("jaxopt_lab.curvature.curvature_map is not available yet")
    path = tmp_path / "cmap.png"
    code, out, err = _run(capsys, "curvature-map", "saddle_trig", "--out", str(path),
                          "--resolution", "12")
    assert code == 0, err
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_run_experiment_plumbing(tmp_path, capsys, monkeypatch):
    """`run NAME` picks the preset, passes the run directory and prints the summary."""
    import dataclasses
    import types

    from jaxopt_lab import experiments

    calls = []

    @dataclasses.dataclass(frozen=True)
    class Config:
        steps: int

        @classmethod
        def quick(cls):
            return cls(steps=3)

        @classmethod
        def full(cls):
            return cls(steps=300)

    def run(config, out_dir=None):
        from jaxopt_lab import compare

        calls.append((config, out_dir))
        return compare.Results(["a"], {"a": [{}]}, {"a": {"x": np.zeros((1, 2))}},
                               summary={"final_loss": 0.125, "exploded": {"sgd": 2}})

    toy = types.SimpleNamespace(Config=Config, run=run)
    monkeypatch.setattr(experiments, "names", lambda: ["toy"], raising=False)
    monkeypatch.setattr(experiments, "get", lambda name: toy, raising=False)
    code, out, err = _run(capsys, "run", "toy", "--quick", "--out", str(tmp_path / "t"))
    assert code == 0, err
    assert calls == [(Config(steps=3), str(tmp_path / "t"))]
    assert "final_loss: 0.125" in out and "sgd: 2" in out
    assert f"run directory: {tmp_path / 't'}" in out
    code, out, err = _run(capsys, "run", "toy", "--out", str(tmp_path / "f"))
    assert code == 0 and calls[-1] == (Config(steps=300), str(tmp_path / "f"))
    code, out, err = _run(capsys, "run", "other")
    assert code == 2 and "['toy']" in err and len(err.strip().splitlines()) == 1


def _starts(mode, a, b, n, seed):
    """Seed i's start: sample_start(mode, fold_in(fold_in(key(seed), i), 0), a, b)."""
    import jax

    from jaxopt_lab.compare.landscape import sample_start

    key = jax.random.key(seed)
    return np.stack([np.asarray(sample_start(
        mode, jax.random.fold_in(jax.random.fold_in(key, i), 0), np.asarray(a, np.float32),
        np.asarray(b, np.float32), len(a))) for i in range(n)])


@pytest.mark.slow
def test_run_real_experiment_quick(tmp_path, capsys):
    """Integration with the real registry (slow: trains models); plumbing is covered above."""
    from jaxopt_lab import experiments

    name = experiments.names()[0]
    code, out, err = _run(capsys, "run", name, "--quick", "--out", str(tmp_path / "e"))
    assert code == 0, err
    assert f"experiment: {name} (quick)" in out
    assert (tmp_path / "e" / "records.csv").exists() and (tmp_path / "e" / "meta.json").exists()
    assert list((tmp_path / "e").glob("*.png"))
