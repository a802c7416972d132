"""Tests of jaxopt_lab.plot: figures are checked through their artists, not pixels."""

from __future__ import annotations

import csv
import math
from types import SimpleNamespace as NS

import jax.numpy as jnp
import numpy as np
import pytest
from matplotlib.figure import Figure

from jaxopt_lab import plot

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _saddle_landscape():
    cps = (
        NS(x=np.zeros(2), kind="saddle", value=0.0),
        NS(x=np.array([1.0, 1.0]), kind="minimum", value=-1.0),
        NS(x=np.array([5.0, 5.0]), kind="maximum", value=3.0),  # outside the window
    )
    return NS(
        name="toy_saddle",
        fn=lambda x: x[0] ** 2 - x[1] ** 2 + 0.1 * x[0] * x[1],
        dim=2,
        bounds=(np.array([-1.5, -1.5]), np.array([1.5, 1.5])),
        critical_points=cps,
        global_minima=np.zeros((0, 2)),
    )


def _gd_trajectories(lr, n, steps, seed):
    """Serial gradient descent on the toy saddle: [1, n, steps, 2]."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.1, 0.1, size=(n, 2))
    out = np.zeros((1, n, steps, 2))
    for t in range(steps):
        out[0, :, t] = x
        g = np.stack([2 * x[:, 0] + 0.1 * x[:, 1], -2 * x[:, 1] + 0.1 * x[:, 0]], axis=1)
        x = x - lr * g
    return out


def _legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _records():
    # sgd: 3 of 5 escape, adam: all 5, two learning rates for sgd.
    recs = []
    for lr, steps in ((0.1, [10.0, 20.0, math.inf, 30.0, math.inf]),
                      (0.2, [5.0, 6.0, 7.0, 8.0, math.inf])):
        for s, v in enumerate(steps):
            recs.append(dict(optimizer="sgd", learning_rate=lr, seed=s, escape_step=v,
                             hit_step=math.inf, final_value=0.0, final_grad_norm=0.0,
                             nonfinite=False))
    for s, v in enumerate([3.0, 4.0, 4.0, 9.0, 12.0]):
        recs.append(dict(optimizer="adam", learning_rate=0.1, seed=s, escape_step=v,
                         hit_step=math.inf, final_value=0.0, final_grad_norm=0.0,
                         nonfinite=s == 4))  # diverged after escaping: escape still counts
    return recs


# ----------------------------------------------------------------------------- landscape


def test_contour_overlay_trajectories_markers_and_legend(tmp_path):
    land = _saddle_landscape()
    trajs = {"sgd": _gd_trajectories(0.05, 6, 30, 0), "adam": _gd_trajectories(0.1, 2, 30, 1)}
    path = tmp_path / "contour.png"
    fig = plot.contour(land, trajs, max_per_optimizer=4, escape=(np.zeros(2), 1.0),
                       resolution=40, path=path, layout="overlay", select="first")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2  # main axes + colourbar
    ax = fig.axes[0]
    # 4 sgd (capped) + 2 adam trajectory lines; their data are the trajectories themselves
    assert len(ax.lines) == 6
    np.testing.assert_allclose(ax.lines[0].get_xydata(), trajs["sgd"][0, 0])
    np.testing.assert_allclose(ax.lines[4].get_xydata(), trajs["adam"][0, 0])
    assert ax.lines[0].get_color() != ax.lines[4].get_color()
    texts = _legend_texts(ax)
    assert texts[:2] == ["sgd", "adam"]
    assert {"start", "end", "saddle", "minimum", "escape radius"} <= set(texts)
    assert "maximum" not in texts  # outside the plotted window
    assert ax.get_xlabel() == "x" and ax.get_ylabel() == "y"
    assert "toy_saddle" in ax.get_title()
    assert ax.get_xlim() == (-1.5, 1.5)
    assert len(ax.patches) == 1  # the escape circle
    assert path.read_bytes()[:8] == PNG_MAGIC


def _panel_axes(fig):
    return [a for a in fig.axes if a.get_label() != "<colorbar>"]


def test_contour_one_panel_per_optimizer_with_its_own_trajectories():
    land = _saddle_landscape()
    names = ["sgd", "momentum", "adam", "rmsprop", "pgd"]
    # every optimizer leaves along the same direction: overlaid, they would coincide
    trajs = {n: _gd_trajectories(0.05 * (i + 1), 7, 25, 0) for i, n in enumerate(names)}
    fig = plot.contour(land, trajs, max_per_optimizer=3, escape=(np.zeros(2), 1.0),
                       resolution=30)
    panels = _panel_axes(fig)
    assert len(panels) == 5 and len(fig.axes) == 6  # + one shared colourbar
    for ax, n in zip(panels, names, strict=True):
        assert ax.get_title().split("\n")[0] == n
        assert len(ax.lines) == 3  # that optimizer's trajectories only
        for line in ax.lines:
            xy = line.get_xydata()
            assert any(np.allclose(xy, t) for t in trajs[n][0])
        assert len(ax.patches) == 1  # its escape circle
    assert panels[0].get_shared_x_axes().joined(panels[0], panels[4])
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"fastest", "median", "slowest", "start", "end", "saddle", "escape radius"} <= set(
        legend)
    # the window is clipped to the trajectories and the escape circle, inside the bounds
    lo, hi = panels[0].get_xlim()
    assert -1.5 <= lo < -1.0 and 1.0 < hi <= 1.5


def test_contour_spreads_the_drawn_trajectories_over_rank_by():
    land = _saddle_landscape()
    tr = _gd_trajectories(0.05, 9, 20, 3)
    steps = np.array([50.0, 10, 40, np.inf, 20, 30, 70, 60, 80])  # slowest = never (index 3)
    fig = plot.contour(land, {"sgd": tr, "adam": tr}, max_per_optimizer=3,
                       rank_by={"sgd": steps[None], "adam": steps}, rank_label="escape step",
                       resolution=20, zoom=False)
    ax = _panel_axes(fig)[0]
    drawn = [line.get_xydata() for line in ax.lines]
    for got, want in zip(drawn, (1, 0, 3), strict=True):  # fastest, median (50), slowest
        np.testing.assert_allclose(got, tr[0, want])
    assert ax.get_title() == "sgd\nescape step: 10, 50, never"
    assert ax.get_xlim() == (-1.5, 1.5)  # zoom=False keeps the bounds
    with pytest.raises(ValueError, match=r"rank_by\['sgd'\]"):
        plot.contour(land, {"sgd": tr}, rank_by={"sgd": steps[:4]}, resolution=10)
    with pytest.raises(ValueError, match="layout"):
        plot.contour(land, {"sgd": tr}, layout="grid", resolution=10)


def test_contour_names_optimizers_whose_trajectories_all_diverged():
    land = _saddle_landscape()
    good = _gd_trajectories(0.05, 4, 10, 0)
    bad = good.copy()
    bad[:, :, 3:] = np.nan  # finite for three recorded iterates, then NaN
    fig = plot.contour(land, {"adam": good, "sgd": bad}, resolution=20)
    adam, sgd = _panel_axes(fig)
    assert "non-finite" not in adam.get_title()
    assert "4/4 non-finite" in sgd.get_title()
    assert any("all 4 runs non-finite" in t.get_text() for t in sgd.texts)
    for line in sgd.lines:  # the finite prefix is drawn
        assert line.get_xydata().shape == (3, 2)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "last finite iterate (then non-finite)" in legend


def test_contour_plain_callable_needs_bounds_and_checks_shapes():
    f = lambda x: jnp.sum(x**2)
    with pytest.raises(ValueError, match="bounds"):
        plot.contour(f)
    fig = plot.contour(f, bounds=([-1, -1], [1, 1]), resolution=10)
    assert fig.axes[0].get_legend() is None  # no trajectories, no catalog
    with pytest.raises(ValueError, match=r"trajectories\['a'\]"):
        plot.contour(f, {"a": np.zeros((3, 5, 3))}, bounds=([-1, -1], [1, 1]), resolution=10)
    with pytest.raises(ValueError, match="dim=3"):
        plot.contour(f, bounds=([-1] * 3, [1] * 3))
    with pytest.raises(ValueError, match="upper > lower"):
        plot.contour(f, bounds=([1, 1], [-1, -1]))


def test_contour_1d_line_with_points():
    land = NS(name="sinq", fn=lambda x: jnp.sin(3 * x[0]) + 0.5 * x[0] ** 2, dim=1,
              bounds=(np.array([-3.0]), np.array([3.0])), critical_points=(),
              global_minima=np.array([[-0.5]]))
    tr = np.linspace(2.5, 1.5, 12)[None, :, None]
    fig = plot.contour(land, {"sgd": tr})
    ax = fig.axes[0]
    assert len(fig.axes) == 1
    assert len(ax.lines) == 1  # f(x)
    xs, ys = ax.lines[0].get_xydata().T
    np.testing.assert_allclose(ys, np.sin(3 * xs) + 0.5 * xs**2, atol=1e-5)
    pts = ax.collections[0].get_offsets()  # the 12 iterates on the curve
    np.testing.assert_allclose(pts[:, 0], tr[0, :, 0])
    np.testing.assert_allclose(pts[:, 1], np.sin(3 * tr[0, :, 0]) + 0.5 * tr[0, :, 0] ** 2,
                               atol=1e-5)
    assert ax.get_ylabel() == "f(x)"
    assert {"f(x)", "sgd", "start", "end", "minimum"} <= set(_legend_texts(ax))


def test_surface_is_3d_with_one_line_per_trajectory():
    land = _saddle_landscape()
    fig = plot.surface(land, {"sgd": _gd_trajectories(0.05, 5, 10, 0)}, max_per_optimizer=2,
                       resolution=12)
    ax = fig.axes[0]
    assert ax.name == "3d"
    assert len(ax.lines) == 2
    assert ax.get_zlabel() == "f(x, y)"
    with pytest.raises(ValueError, match="2-D"):
        plot.surface(NS(fn=lambda x: x[0], dim=1, bounds=([0.0], [1.0])))


# ----------------------------------------------------------------------------- sweep


def test_escape_ecdf_matches_empirical_cdf_and_shows_misses():
    recs = _records()
    fig = plot.escape_ecdf(recs, horizon=40)
    ax = fig.axes[0]
    assert len(ax.lines) == 3 + 1  # three groups + the y=1 reference line
    labels = _legend_texts(ax)
    assert labels == ["sgd (lr=0.1): 2/5 never escaped", "sgd (lr=0.2): 1/5 never escaped",
                      "adam (lr=0.1): 1/5 non-finite"]
    groups = {("sgd", 0.1): [], ("sgd", 0.2): [], ("adam", 0.1): []}
    for r in recs:
        groups[(r["optimizer"], r["learning_rate"])].append(r["escape_step"])
    for line, vals in zip(ax.lines[:3], groups.values(), strict=True):
        vals = np.asarray(vals)
        x, y = line.get_xydata().T
        assert x[-1] == 40 and y[-1] == pytest.approx(np.mean(np.isfinite(vals)))
        for t in (0, 4, 7.5, 10, 25, 39):  # oracle: fraction of runs escaped by step t
            # "post" steps: the value at t is the last vertex with x <= t
            assert y[np.searchsorted(x, t, side="right") - 1] == pytest.approx(
                np.mean(vals <= t))
    notes = [t.get_text() for t in ax.texts]
    assert notes == ["sgd (lr=0.1): 2/5 never escaped", "sgd (lr=0.2): 1/5 never escaped"]
    assert ax.get_xlabel() == "escape step"
    assert ax.get_ylabel() == "fraction of runs escaped"


def test_escape_ecdf_reads_records_csv(tmp_path):
    recs = _records()
    path = tmp_path / "records.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(recs[0]))
        w.writeheader()
        w.writerows(recs)
    loaded = plot.load_records(path)
    assert loaded[2]["escape_step"] == math.inf and loaded[0]["learning_rate"] == 0.1
    assert loaded[14]["nonfinite"] is True
    fig = plot.escape_ecdf(path, column="escape_step", log_x=True)
    assert fig.axes[0].get_xscale() == "log"
    assert len(fig.axes[0].get_legend().get_texts()) == 3


def test_escape_violin_counts_misses():
    fig = plot.escape_violin(_records())
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["sgd\nlr=0.1\n2/5 missed", "sgd\nlr=0.2\n1/5 missed",
                      "adam\nlr=0.1\n0/5 missed\n1/5 non-finite"]


def _diverged_records():
    """Rosenbrock-like: sgd all non-finite (final_value nan), adam flagged, rmsprop fine."""
    recs = []
    for s in range(4):
        recs.append(dict(optimizer="sgd", learning_rate=0.01, seed=s, hit_step=math.inf,
                         final_value=math.nan, nonfinite=False))  # only final_value says so
        recs.append(dict(optimizer="adam", learning_rate=0.01, seed=s, hit_step=10.0 + s,
                         final_value=0.0, nonfinite=s == 0))
        recs.append(dict(optimizer="rmsprop", learning_rate=0.01, seed=s,
                         hit_step=math.inf if s else 7.0, final_value=0.5, nonfinite=False))
    return recs


def test_sweep_figures_say_which_optimizers_diverged():
    recs = _diverged_records()
    ax = plot.escape_ecdf(recs, column="hit_step", horizon=20).axes[0]
    assert _legend_texts(ax) == ["sgd: 4/4 never hit target, 4/4 non-finite",
                                 "adam: 1/4 non-finite", "rmsprop: 3/4 never hit target"]
    boxes = [a for a in ax.artists if type(a).__name__ == "Legend"]
    assert len(boxes) == 1  # groups where no run succeeded are named inside the axes
    assert [t.get_text() for t in boxes[0].get_texts()] == ["sgd (4/4 non-finite)"]
    assert "no run hit target" in boxes[0].get_title().get_text()

    ax = plot.escape_violin(recs, column="hit_step").axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0] == "sgd\n4/4 missed\n4/4 non-finite"
    notes = [t for t in ax.texts if "no run" in t.get_text()]
    assert [t.get_text() for t in notes] == ["no run hit the target\n(4/4 non-finite)"]
    assert notes[0].get_position()[0] == 0  # in sgd's slot

    ax = plot.success_heatmap(recs, column="hit_step").axes[0]
    assert "0.00\n0/4\n4 non-finite" in [t.get_text() for t in ax.texts]


def _tick_boxes(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    fig.draw_without_rendering()
    r = canvas.get_renderer()
    return sorted((t.get_window_extent(r) for t in fig.axes[0].get_xticklabels()),
                  key=lambda b: b.x0)


@pytest.mark.parametrize("figsize", [None, (7.0, 4.5)])
def test_escape_violin_tick_labels_do_not_overlap_with_ten_variants(figsize):
    recs = []
    for opt in ("sgd", "momentum", "adam", "rmsprop", "pgd"):
        for lr in (0.01, 0.05):
            for s in range(6):
                recs.append(dict(optimizer=opt, learning_rate=lr, seed=s,
                                 escape_step=10.0 * s + 5 if s < 5 else math.inf,
                                 final_value=-1.0, nonfinite=opt == "momentum" and lr == 0.05))
    fig = plot.escape_violin(recs, figsize=figsize)
    boxes = _tick_boxes(fig)
    assert len(boxes) == 10
    for a, b in zip(boxes, boxes[1:], strict=False):
        assert a.x1 <= b.x0, (a, b)
    if figsize is None:
        assert fig.get_figwidth() >= 10  # grows with the number of variants


def test_escape_violin_lines_share_their_body_colour():
    from matplotlib.colors import to_rgba

    ax = plot.escape_violin(_records()).axes[0]
    bodies = [c for c in ax.collections if type(c).__name__ in ("PolyCollection",
                                                                "FillBetweenPolyCollection")]
    lines = [c for c in ax.collections if type(c).__name__ == "LineCollection"]
    assert len(bodies) == 3 and len(lines) == 3 * 4  # medians, mins, maxes, bars per violin
    for i, body in enumerate(bodies):
        want = to_rgba(body.get_facecolor()[0], 1.0)
        for line in lines[4 * i: 4 * i + 4]:
            assert np.allclose(to_rgba(line.get_color()[0], 1.0), want)


def test_success_heatmap_cells_equal_success_rates():
    recs = _records()
    fig = plot.success_heatmap(recs)
    ax = fig.axes[0]
    rates = np.ma.filled(ax.images[0].get_array(), np.nan)
    expected = np.array([[3 / 5, 4 / 5], [1.0, np.nan]])  # rows sgd, adam; cols 0.1, 0.2
    np.testing.assert_allclose(rates, expected)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["sgd", "adam"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.1", "0.2"]
    assert sorted(t.get_text() for t in ax.texts) == ["0.60\n3/5", "0.80\n4/5",
                                                      "1.00\n5/5\n1 non-finite"]
    assert ax.get_xlabel() == "learning rate" and ax.get_ylabel() == "optimizer"
    with pytest.raises(ValueError, match="momentum"):
        plot.success_heatmap(recs, param="momentum")


def test_sweep_plots_reject_bad_records():
    with pytest.raises(ValueError, match="must not be empty"):
        plot.escape_ecdf([])
    with pytest.raises(TypeError, match="records"):
        plot.escape_ecdf(42)
    with pytest.raises(ValueError, match="hit_time"):
        plot.escape_ecdf(_records(), column="hit_time")


# ----------------------------------------------------------------------------- curvature


def _toy_map(transpose=False):
    xs = np.linspace(-2.0, 2.0, 9)
    ys = np.linspace(-1.0, 1.0, 5)
    X, Y = np.meshgrid(xs, ys)  # [ny, nx]
    mn = X - 0.5  # negative on the left, positive on the right
    mx = mn + 3.0
    codes = np.where(mn > 0, 0, 2)  # minimum-like / saddle-like cells
    if transpose:
        mn, mx, codes = mn.T, mx.T, codes.T
    return dict(xs=xs, ys=ys, min_eig=mn, max_eig=mx, kind_codes=codes), X - 0.5


@pytest.mark.parametrize("transpose", [False, True])
def test_curvature_heatmap_diverging_at_zero_with_kinds(transpose, tmp_path):
    cmap, expected = _toy_map(transpose)
    cps = (NS(x=np.array([0.0, 0.0]), kind="saddle", value=0.0),)
    path = tmp_path / "c.png" if transpose else None
    fig = plot.curvature_heatmap(cmap, critical_points=cps, title="toy", path=path)
    ax = fig.axes[0]
    img = ax.images[0]
    np.testing.assert_allclose(np.asarray(img.get_array()), expected)
    assert img.norm.vcenter == 0.0 and img.get_cmap().name == "RdBu_r"
    assert len(ax.collections) >= 2  # the zero contour and the saddle marker
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["saddle"]
    # second image panel: the kind codes (curvature.maps.MAP_KIND_NAMES by default)
    kind_axes = [a for a in fig.axes if a.images and a is not ax]
    np.testing.assert_array_equal(np.asarray(kind_axes[0].images[0].get_array()),
                                  np.where(expected > 0, 0, 2))
    assert fig._suptitle.get_text() == "toy"
    if path is not None:
        assert path.read_bytes()[:8] == PNG_MAGIC


def test_curvature_heatmap_rejects_wrong_shapes():
    cmap, _ = _toy_map()
    cmap["min_eig"] = np.zeros((4, 4))
    with pytest.raises(ValueError, match="min_eig"):
        plot.curvature_heatmap(cmap)


def test_spectrum_plot_log_density_and_rug():
    grid = np.linspace(-3, 10, 200)
    dens = np.exp(-(grid**2)) + 1e-4 * np.exp(-10 * (grid - 8) ** 2)
    fig = plot.spectrum_plot(grid, dens, eigenvalues=[-2.0, 0.1, 8.0])
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    np.testing.assert_allclose(ax.lines[0].get_xdata(), grid)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), np.maximum(dens, 1e-12))
    np.testing.assert_allclose(ax.lines[1].get_xdata(), [-2.0, 0.1, 8.0])
    assert ax.get_xlabel() == "eigenvalue"
    with pytest.raises(ValueError, match="equal length"):
        plot.spectrum_plot(grid, dens[:-1])


# ----------------------------------------------------------------------------- saving


def _every_figure(path):
    land = _saddle_landscape()
    tr = {"sgd": _gd_trajectories(0.05, 3, 8, 0)}
    cmap, _ = _toy_map()
    return {
        "contour": lambda: plot.contour(land, tr, resolution=10, path=path),
        "surface": lambda: plot.surface(land, tr, resolution=8, path=path),
        "escape_ecdf": lambda: plot.escape_ecdf(_records(), path=path),
        "escape_violin": lambda: plot.escape_violin(_records(), path=path),
        "success_heatmap": lambda: plot.success_heatmap(_records(), path=path),
        "curvature_heatmap": lambda: plot.curvature_heatmap(cmap, path=path),
        "spectrum_plot": lambda: plot.spectrum_plot(np.linspace(0, 1, 5), np.ones(5),
                                                    path=path),
        "loss_curves": lambda: plot.loss_curves({"a": np.ones((2, 5))}, path=path),
        "gradient_profile": lambda: plot.gradient_profile({"a": np.ones((2, 3))}, path=path),
        "dead_fraction_curves": lambda: plot.dead_fraction_curves(
            np.zeros((2, 4)), threshold=0.5, path=path),
    }


@pytest.mark.parametrize("name", list(_every_figure(None)))
def test_figures_write_exactly_path_and_never_create_folders(name, tmp_path):
    missing = tmp_path / "no_such_dir" / "fig.png"
    with pytest.raises(ValueError, match="path") as err:
        _every_figure(missing)[name]()
    assert "no_such_dir" in str(err.value)
    assert not (tmp_path / "no_such_dir").exists()
    with pytest.raises(ValueError, match="path"):  # no extension: refused, nothing appended
        _every_figure(tmp_path / "fig")[name]()
    with pytest.raises(ValueError, match="path"):  # "lr0.1" is not a figure format
        _every_figure(str(tmp_path / "contour-lr0.1"))[name]()
    out = tmp_path / "fig.png"
    assert isinstance(_every_figure(out)[name](), Figure)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png"]
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_save_figure_checks_path_type_and_returns_the_figure(tmp_path):
    fig = Figure()
    with pytest.raises(TypeError, match="path"):
        plot.save_figure(fig, 3)
    assert plot.save_figure(fig, tmp_path / "a.svg") is fig
    assert (tmp_path / "a.svg").exists()
    assert plot.check_path(tmp_path / "b.pdf") == str(tmp_path / "b.pdf")


def test_plot_modules_import_no_private_names_from_each_other():
    import ast
    import pathlib

    import jaxopt_lab.plot as pkg

    for src in pathlib.Path(pkg.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(src.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jaxopt_lab"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{src.name} imports {private} from {node.module}"
