#!/usr/bin/env bash
# The accelerator run: every benchmark's GPU column at the sizes where a GPU matters, in
# under 8 minutes on one GPU (an H100/H200), JSON for each part in one folder.
#
#   bash benchmarks/accelerator.sh [OUT_DIR]
#
# OUT_DIR: the argument, else $OUT, else benchmarks/results/accelerator/. Then
#   python benchmarks/merge_accelerator.py OUT_DIR
# writes the "## GPU" section of benchmarks/RESULTS.md from it.
#
# Parts (GPU sizes; each has its own time limit, and a global deadline keeps the whole run
# under ACCEL_BUDGET_S seconds, 450 on a GPU):
#   throughput  2-D saddle escape sweep up to 1,048,576 seeds x 1000 steps (throughput.py)
#   mlp         1024 MLP seeds vs 1 seed with compare.train (networks.py --only mlp)
#   curvature   HVP / gradient time and memory, Lanczos top-5, on a 10.0M-parameter MLP
#               784-2048-2048-2048-10, batch 1024 (curvature.py --only hvp,top5)
#   gan         16 GAN seeds vmapped vs serial, cost of remedies pack2 and unrolled (gan.py)
#   gan_preset  gan_mixtures at Config.full() settings (2 lr x 16 seeds x 2000 steps), remedy
#               "none", optimizers adam/sgd/momentum0.9 (networks.py --only gan)
#   continual   continual at Config.full() settings, split digits, class-incremental,
#               naive/ewc/gem (networks.py --only continual)
# Without a GPU (jax.default_backend() != "gpu", or ACCEL_MODE=cpu) the same parts run at
# reduced sizes (a CPU smoke run: about 2 minutes on 2 cores), the three networks.py
# sections in one process.
#
# Environment: PYTHON (default: the repository's .venv, else python3), ACCEL_MODE (gpu|cpu:
# override the detection), ACCEL_BUDGET_S (override the global deadline, seconds).
set -u

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_DIR="${1:-${OUT:-$REPO/benchmarks/results/accelerator}}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$REPO/.venv/bin/python" ]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
cd "$REPO" || exit 1
LOG="$OUT_DIR/accelerator.log"
STATUS="$OUT_DIR/parts.tsv"
: > "$LOG"
: > "$STATUS"
# no file of an earlier run survives into this one's merge
rm -f "$OUT_DIR"/{accelerator,device,throughput,curvature,gan,networks}.json \
  "$OUT_DIR"/networks_{mlp,gan,continual}.json
START=$SECONDS

say() { echo "$@" | tee -a "$LOG"; }

# --------------------------------------------------------------------------- the device
say "# accelerator run $(date -u +%Y-%m-%dT%H:%M:%SZ), output $OUT_DIR"
say "# python: $PYTHON"
DEVINFO="$(DEVICE_JSON="$OUT_DIR/device.json" "$PYTHON" - 2>&1 <<'EOF'
import json, os, platform

import jax
import jaxlib

dev = jax.devices()
print("jax", jax.__version__, "jaxlib", jaxlib.__version__, "backend", jax.default_backend())
print("jax.devices():", dev)
for d in dev:
    print(f"  {d.id}: {d.device_kind} ({d.platform})")
with open(os.environ["DEVICE_JSON"], "w") as fh:
    json.dump({"device_kind": dev[0].device_kind, "platform": dev[0].platform,
               "device_count": len(dev), "devices": [str(d) for d in dev],
               "jax": jax.__version__, "jaxlib": jaxlib.__version__,
               "python": platform.python_version(), "cpu_count": os.cpu_count(),
               "host": platform.platform()}, fh, indent=2)
print(jax.default_backend())
EOF
)" || { say "$DEVINFO"; say "cannot import jax with $PYTHON"; exit 2; }
say "$DEVINFO"
BACKEND="$(echo "$DEVINFO" | grep -xE '[a-z]+' | tail -n 1)"
NVSMI=""
if command -v nvidia-smi >/dev/null 2>&1; then
  NVSMI="$(nvidia-smi 2>&1)"
  say "$NVSMI"
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv \
    > "$OUT_DIR/nvidia_smi.csv" 2>/dev/null || true
  echo "$NVSMI" > "$OUT_DIR/nvidia_smi.txt"
else
  say "(no nvidia-smi on PATH)"
  rm -f "$OUT_DIR/nvidia_smi.csv" "$OUT_DIR/nvidia_smi.txt"
fi
MODE="${ACCEL_MODE:-}"
if [ -z "$MODE" ]; then
  if [ "$BACKEND" = "gpu" ]; then MODE=gpu; else MODE=cpu; fi
fi
if [ -n "$NVSMI" ] && [ "$BACKEND" != "gpu" ]; then
  say "WARNING: nvidia-smi sees a GPU but JAX's backend is '$BACKEND' (jax without CUDA?):"
  say "         running the CPU sizes; install jax[cuda12] to measure the GPU."
fi
if [ "$MODE" = gpu ]; then BUDGET="${ACCEL_BUDGET_S:-450}"; else BUDGET="${ACCEL_BUDGET_S:-900}"; fi
say "# mode: $MODE (backend $BACKEND), deadline ${BUDGET}s after start"

# ------------------------------------------------------------------------ one part
# run_part NAME LIMIT_S JSON_NAME CMD...: runs CMD under min(LIMIT_S, time left); the part's
# JSON (OUT_DIR/JSON_NAME) is removed first so a failed part never leaves an old file.
run_part() {
  local name="$1" limit="$2" json="$3"; shift 3
  local left=$(( BUDGET - (SECONDS - START) - 10 ))
  rm -f "$OUT_DIR/$json"
  if [ "$left" -lt 20 ]; then
    say "## $name: skipped (${left}s left before the deadline)"
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" skipped 0 0 "$json" >> "$STATUS"
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  say ""
  say "## $name (limit ${limit}s): $*"
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  local took=$(( SECONDS - t0 ))
  local status=ok
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then status=timeout
  elif [ "$rc" -ne 0 ]; then status=failed; fi
  say "## $name: $status (rc $rc) in ${took}s"
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$took" "$json" >> "$STATUS"
}

B="$REPO/benchmarks"
if [ "$MODE" = gpu ]; then
  run_part throughput 150 throughput.json "$PYTHON" "$B/throughput.py" --max-seeds 1048576 \
    --out "$OUT_DIR/throughput.json"
  run_part mlp 90 networks_mlp.json "$PYTHON" "$B/networks.py" --only mlp --seeds 1024 \
    --steps 500 --out "$OUT_DIR/networks_mlp.json"
  run_part curvature 100 curvature.json "$PYTHON" "$B/curvature.py" --only hvp,top5 \
    --sizes 784,2048,2048,2048,10 --batch-size 1024 --out "$OUT_DIR/curvature.json"
  run_part gan 100 gan.json "$PYTHON" "$B/gan.py" --remedies none,pack2,unrolled \
    --out "$OUT_DIR/gan.json"
  run_part gan_preset 90 networks_gan.json "$PYTHON" "$B/networks.py" --only gan \
    --gan-optimizers adam,sgd,momentum0.9 --out "$OUT_DIR/networks_gan.json"
  run_part continual 90 networks_continual.json "$PYTHON" "$B/networks.py" --only continual \
    --out "$OUT_DIR/networks_continual.json"
else
  run_part throughput 180 throughput.json "$PYTHON" "$B/throughput.py" --quick \
    --out "$OUT_DIR/throughput.json"
  # the three networks.py sections in one process (one jax import, not three)
  run_part networks 240 networks.json "$PYTHON" "$B/networks.py" --quick \
    --out "$OUT_DIR/networks.json"
  run_part curvature 180 curvature.json "$PYTHON" "$B/curvature.py" --quick --only hvp,top5 \
    --sizes 784,32,10 --batch-size 32 --out "$OUT_DIR/curvature.json"
  run_part gan 180 gan.json "$PYTHON" "$B/gan.py" --quick --seeds 2 --steps 20 --remedies none \
    --out "$OUT_DIR/gan.json"
fi

# ------------------------------------------------------------------------ summary JSON
TOTAL=$(( SECONDS - START ))
MODE="$MODE" BACKEND="$BACKEND" TOTAL="$TOTAL" BUDGET="$BUDGET" OUT_DIR="$OUT_DIR" \
  STATUS="$STATUS" "$PYTHON" - <<'EOF' 2>&1 | tee -a "$LOG"
import json, os, subprocess, time

out = os.environ["OUT_DIR"]
with open(os.path.join(out, "device.json")) as fh:
    device = json.load(fh)
parts = {}
with open(os.environ["STATUS"]) as fh:
    for line in fh:
        name, status, rc, secs, js = line.rstrip("\n").split("\t")
        path = os.path.join(out, js)
        parts[name] = {"status": status, "rc": int(rc), "seconds": int(secs), "json": js,
                       "json_written": os.path.exists(path)}
gpu = {}
csv = os.path.join(out, "nvidia_smi.csv")
if os.path.exists(csv):
    lines = [x.strip() for x in open(csv) if x.strip()]
    if len(lines) >= 2:
        keys = [k.strip() for k in lines[0].split(",")]
        gpu["gpus"] = [dict(zip(keys, (v.strip() for v in row.split(",")))) for row in lines[1:]]
    txt = open(os.path.join(out, "nvidia_smi.txt")).read()
    if "CUDA Version:" in txt:
        gpu["cuda_version"] = txt.split("CUDA Version:")[1].split()[0]
    if "Driver Version:" in txt:
        gpu["driver_version"] = txt.split("Driver Version:")[1].split()[0]
try:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
    if subprocess.run(["git", "diff", "--quiet", "HEAD"]).returncode:
        commit += " + uncommitted changes"
except Exception:
    commit = None
summary = {
    "benchmark": "accelerator",
    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "mode": os.environ["MODE"], "backend": os.environ["BACKEND"], **device, "commit": commit,
    "total_seconds": int(os.environ["TOTAL"]), "budget_seconds": int(os.environ["BUDGET"]),
    "parts": parts, **gpu,
}
with open(os.path.join(out, "accelerator.json"), "w") as fh:
    json.dump(summary, fh, indent=2)
print(f"\n# parts: " + ", ".join(f"{k} {v['status']} ({v['seconds']}s)" for k, v in parts.items()))
print(f"# total {summary['total_seconds']} s; wrote {out}/accelerator.json")
EOF
FAILED=$(awk -F'\t' '$2 != "ok"' "$STATUS" | wc -l)
say "# accelerator run done in $(( SECONDS - START ))s, parts not ok: $FAILED"
say "# next: python benchmarks/merge_accelerator.py $OUT_DIR"
[ "$FAILED" -eq 0 ]
