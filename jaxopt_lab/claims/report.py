"""The claims report: one self-contained HTML page and ``report.json``.

The page holds the ledger (every claim with its source, statistic, interval, published
value and verdict, each linked to the figure that shows it), every test of every claim,
and one section per experiment run: its config, library versions, device, timings and
figures, embedded as base64 PNG (the page needs no other file and no network). All text is
HTML-escaped; the page has no script.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import math
import os
import re
from typing import Any

from jaxopt_lab.claims.core import Verdict
from jaxopt_lab.claims.ledger import Ledger, counts, verify
from jaxopt_lab.claims.registry import CLAIMS

HTML_NAME = "report.html"
JSON_NAME = "report.json"

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1200px;
color:#222;padding:0 1em}
table{border-collapse:collapse;width:100%;margin:1em 0;font-size:0.9em}
th,td{border:1px solid #ccc;padding:4px 6px;vertical-align:top;text-align:left}
th{background:#f3f3f3}
.verdict{font-weight:bold;white-space:nowrap}
.confirmed{color:#0a6b1f}.refuted{color:#a31515}.mixed{color:#9a6a00}.untested{color:#666}
pre{background:#f7f7f7;padding:0.5em;overflow-x:auto;font-size:0.8em;max-height:24em}
figure{display:inline-block;margin:0.5em;vertical-align:top;max-width:560px}
figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:0.85em}
.small{font-size:0.85em;color:#555}
"""


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _anchor(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", "-".join(parts))


def fmt(v: Any) -> str:
    """A number for the ledger: 4 significant digits, ``inf``/``nan`` spelled out."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == int(v) and abs(v) < 1e6:
        return str(int(v))
    return f"{v:.4g}"


def interval_text(v: Verdict) -> str:
    """``estimate [lo, hi]`` (or ``-`` when untested)."""
    if v.verdict == "untested" or math.isnan(v.estimate):
        return "-"
    return f"{fmt(v.estimate)} [{fmt(v.interval[0])}, {fmt(v.interval[1])}]"


def _figure_index(ledger: Ledger) -> dict:
    """run key -> {figure name (no .png): anchor id} for figures present on disk."""
    out = {}
    for o in ledger.runs:
        figs = {}
        meta = getattr(o.results, "meta", None) or {}
        for f in meta.get("figures", []):
            name = f[:-4] if f.endswith(".png") else f
            if os.path.isfile(os.path.join(o.run.run_dir, f)):
                figs[name] = _anchor("fig", o.run.key, name)
        out[o.run.key] = figs
    return out


def _claim_links(ledger: Ledger) -> tuple[dict, dict]:
    """claim id -> [(figure name, anchor)], and anchor -> [claim ids]."""
    fig_index = _figure_index(ledger)
    by_dir = {o.run.run_dir: o.run.key for o in ledger.runs}
    links: dict = {}
    back: dict = {}
    for v in ledger.verdicts:
        key = by_dir.get(v.run_dir)
        for name in v.figures:
            anchor = fig_index.get(key, {}).get(name)
            if anchor:
                links.setdefault(v.claim_id, []).append((name, anchor))
                back.setdefault(anchor, []).append(v.claim_id)
    return links, back


def to_json(ledger: Ledger) -> dict:
    """The JSON-able content of ``report.json``."""
    from jaxopt_lab.compare.store import jsonable

    claims = {c.id: c for c in CLAIMS}
    verdicts = []
    for v in ledger.verdicts:
        c = claims[v.claim_id]
        verdicts.append({
            "claim_id": v.claim_id, "words": c.words, "source": c.source,
            "experiment": c.experiment, "statistic": v.statistic, "estimate": v.estimate,
            "interval": list(v.interval), "published": v.published, "verdict": v.verdict,
            "reason": v.reason, "run_dir": v.run_dir, "figures": list(v.figures),
            "parts": [p._asdict() for p in v.parts]})
    runs = []
    for o in ledger.runs:
        meta = getattr(o.results, "meta", None) or {}
        runs.append({
            "key": o.run.key, "experiment": o.run.experiment, "run_dir": o.run.run_dir,
            "claims": list(o.run.claims), "config": o.run.config, "config_hash": o.run.config_hash,
            "reused": o.reused, "seconds": o.seconds, "error": o.error,
            "versions": meta.get("versions"), "device": meta.get("device"),
            "compile_seconds": meta.get("compile_seconds"),
            "run_seconds": meta.get("run_seconds"), "total_seconds": meta.get("total_seconds"),
            "date": meta.get("date"), "figures": meta.get("figures", [])})
    return jsonable({"preset": ledger.preset, "root": ledger.root, "counts": counts(
        ledger.verdicts), "verdicts": verdicts, "runs": runs,
        "written": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")})


def to_html(ledger: Ledger) -> str:
    """The report page (a complete, self-contained HTML document)."""
    from jaxopt_lab.compare.store import jsonable

    claims = {c.id: c for c in CLAIMS}
    links, back = _claim_links(ledger)
    n = counts(ledger.verdicts)
    out = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
           "<title>jaxopt_lab claims ledger</title>", f"<style>{_CSS}</style></head><body>",
           "<h1>Claims ledger</h1>",
           f"<p>Preset <b>{_e(ledger.preset)}</b>; runs under <code>{_e(ledger.root)}</code>; "
           f"written {_e(datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds'))}."
           "</p>",
           "<p id=\"counts\">" + ", ".join(f"<span class=\"{_e(k)}\">{_e(v)} {_e(k)}</span>"
                                           for k, v in n.items()) + "</p>",
           "<p class=\"small\">Verdicts come from 95% intervals over seeds (Wilson, Newcombe "
           "or bootstrap): confirmed when every test's interval lies on the claimed side, "
           "refuted when every one lies on the other side, mixed otherwise; untested when no "
           "experiment measures the claim yet.</p>",
           "<h2 id=\"ledger\">Ledger</h2>",
           "<table id=\"ledger-table\"><thead><tr><th>claim</th><th>source</th><th>claim</th>"
           "<th>statistic</th><th>estimate [95% CI]</th><th>published</th><th>verdict</th>"
           "<th>figures</th></tr></thead><tbody>"]
    for v in ledger.verdicts:
        c = claims[v.claim_id]
        figs = " ".join(f"<a href=\"#{_e(a)}\">{_e(name)}</a>" for name, a in
                        links.get(v.claim_id, [])) or "-"
        out.append(
            f"<tr class=\"claim-row\" id=\"{_e(_anchor('claim', v.claim_id))}\">"
            f"<td><a href=\"#{_e(_anchor('detail', v.claim_id))}\">{_e(v.claim_id)}</a></td>"
            f"<td>{_e(c.source)}</td><td>{_e(c.words)}</td><td>{_e(v.statistic or '-')}</td>"
            f"<td>{_e(interval_text(v))}</td><td>{_e(v.published or '-')}</td>"
            f"<td class=\"verdict {_e(v.verdict)}\">{_e(v.verdict)}</td><td>{figs}</td></tr>")
    out.append("</tbody></table>")

    out.append("<h2 id=\"details\">Tests of each claim</h2>")
    run_anchor = {o.run.run_dir: _anchor("run", o.run.key) for o in ledger.runs}
    for v in ledger.verdicts:
        c = claims[v.claim_id]
        out.append(f"<h3 id=\"{_e(_anchor('detail', v.claim_id))}\">{_e(v.claim_id)}: "
                   f"<span class=\"verdict {_e(v.verdict)}\">{_e(v.verdict)}</span></h3>")
        out.append(f"<p>{_e(c.words)} <i>({_e(c.source)})</i></p>")
        if v.run_dir and v.run_dir in run_anchor:
            out.append(f"<p class=\"small\">Experiment <a href=\"#{_e(run_anchor[v.run_dir])}\">"
                       f"{_e(c.experiment)}</a>, run directory <code>{_e(v.run_dir)}</code>"
                       "</p>")
        if v.parts:
            out.append("<table><tr><th>test</th><th>estimate [95% CI]</th><th>n</th>"
                       "<th>hypothesis</th><th>published</th><th>verdict</th><th>how</th></tr>")
            for p in v.parts:
                est = ("-" if p.verdict == "untested" else
                       f"{fmt(p.estimate)} [{fmt(p.interval[0])}, {fmt(p.interval[1])}]")
                out.append(f"<tr><td>{_e(p.label)}</td><td>{_e(est)}</td><td>{_e(p.n)}</td>"
                           f"<td>{_e(p.rule)}</td><td>{_e(p.published or '-')}</td>"
                           f"<td class=\"verdict {_e(p.verdict)}\">{_e(p.verdict)}</td>"
                           f"<td class=\"small\">{_e(p.detail)}</td></tr>")
            out.append("</table>")
        if c.note:
            out.append(f"<p class=\"small\">Note: {_e(c.note)}</p>")
        if v.verdict == "untested":
            out.append(f"<p class=\"small\">Why untested: {_e(v.reason)}</p>")

    out.append("<h2 id=\"runs\">Experiment runs</h2>")
    for o in ledger.runs:
        meta = getattr(o.results, "meta", None) or {}
        out.append(f"<h3 id=\"{_e(_anchor('run', o.run.key))}\">{_e(o.run.key)}</h3>")
        cl = ", ".join(f"<a href=\"#{_e(_anchor('claim', cid))}\">{_e(cid)}</a>"
                       for cid in o.run.claims)
        timing = (f"compile {fmt(meta.get('compile_seconds'))} s, run "
                  f"{fmt(meta.get('run_seconds'))} s, total "
                  f"{fmt(meta.get('total_seconds', '-'))} s (as recorded in meta.json)")
        out.append(f"<p>Experiment <b>{_e(o.run.experiment)}</b> for {cl}; directory "
                   f"<code>{_e(o.run.run_dir)}</code>; "
                   f"{'reused a finished run' if o.reused else 'ran now'} "
                   f"({_e(fmt(o.seconds))} s here); {_e(timing)}; date {_e(meta.get('date'))}."
                   "</p>")
        if o.error:
            out.append(f"<p class=\"refuted\">The run failed: {_e(o.error)}</p>")
        dev = meta.get("device") or {}
        out.append(f"<p class=\"small\">Device: {_e(json.dumps(jsonable(dev)))}<br>Versions: "
                   f"{_e(json.dumps(jsonable(meta.get('versions') or {})))}</p>")
        out.append("<details><summary>config</summary><pre>"
                   f"{_e(json.dumps(jsonable(o.run.config), indent=1, sort_keys=True))}"
                   "</pre></details>")
        for f in meta.get("figures", []):
            path = os.path.join(o.run.run_dir, f)
            if not os.path.isfile(path):
                continue
            name = f[:-4] if f.endswith(".png") else f
            anchor = _anchor("fig", o.run.key, name)
            with open(path, "rb") as fh:
                data = base64.b64encode(fh.read()).decode("ascii")
            cited = ", ".join(f"<a href=\"#{_e(_anchor('claim', cid))}\">{_e(cid)}</a>"
                              for cid in back.get(anchor, []))
            out.append(f"<figure id=\"{_e(anchor)}\"><img alt=\"{_e(name)}\" "
                       f"src=\"data:image/png;base64,{data}\"><figcaption>{_e(name)}"
                       f"{' (shows ' + cited + ')' if cited else ''}</figcaption></figure>")
    out.append("</body></html>")
    return "\n".join(out)


def write(ledger: Ledger, out_dir: str) -> tuple[str, str]:
    """Write ``report.html`` and ``report.json`` into ``out_dir``; returns both paths."""
    from jaxopt_lab.compare.store import atomic_write_json, prepare_dir

    out_dir = prepare_dir(out_dir, "out")
    html_path = os.path.join(out_dir, HTML_NAME)
    json_path = os.path.join(out_dir, JSON_NAME)
    tmp = f"{html_path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(to_html(ledger))
    os.replace(tmp, html_path)
    atomic_write_json(json_path, to_json(ledger))
    return html_path, json_path


def check_out_dir(out_dir: str) -> str:
    """Fail early (ValueError naming ``out``) when ``out_dir`` is a file or unwritable."""
    from jaxopt_lab.compare.store import prepare_dir

    return prepare_dir(out_dir, "out")


def report(out_dir: str, claim_ids=None, *, preset: str = "quick", runs_root: str | None = None,
           progress: bool = False, on_run=None) -> tuple[Ledger, str, str]:
    """Verify the claims (runs under ``runs_root``, default ``<out_dir>/runs``: an
    interrupted report resumes from the finished ones) and write the report.

    Returns:
      ``(ledger, html_path, json_path)``.
    """
    out_dir = check_out_dir(out_dir)
    root = runs_root if runs_root is not None else os.path.join(out_dir, "runs")
    ledger = verify(claim_ids, preset=preset, root=root, progress=progress, on_run=on_run)
    html_path, json_path = write(ledger, out_dir)
    return ledger, html_path, json_path


__all__ = ["HTML_NAME", "JSON_NAME", "check_out_dir", "fmt", "interval_text", "report",
           "to_html", "to_json", "write"]
