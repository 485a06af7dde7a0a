#!/usr/bin/env bash
# GPU check (run on a machine with a CUDA GPU, from the repository root):
#   bash benchmarks/gpu_check.sh [OUT_DIR]
# 1. the bert-base-sized step-time benchmark, masking vs finetuning, fp32 (TF32 matmuls) and bf16 autocast;
# 2. one short masking run end to end (offline MiniLM, or the model named by $MODEL: a hub name or a local
#    directory; SST-2 4,000-example subset from $MASKBENCH_DATA_DIR, 2 epochs), once in bf16 autocast and once
#    in fp32 (TF32 matmuls): their dev scores should agree;
# writes step_time_fp32.json, step_time_bf16.json, run_bf16/, run_fp32/ and gpu_check.json (a summary) to OUT_DIR.
set -euo pipefail
OUT="${1:-${OUT:-results/benchmarks/gpu}}"
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$(pwd)/src"
python - <<'PY'
import sys, torch
if not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA device visible to torch " + torch.__version__)
print("GPU:", torch.cuda.get_device_name(0), "bf16:", torch.cuda.is_bf16_supported(), "torch", torch.__version__)
PY
for precision in fp32 bf16; do
  python benchmarks/step_time.py --models bert-base --batch-size 32 --seq-len 128 --steps 20 \
      --precision "$precision" --device cuda --out "$OUT/step_time_$precision.json"
done
DATA="${MASKBENCH_DATA_DIR:-../shared/data}"
MODEL="${MODEL:-minilm}"
for precision in bf16 fp32; do
  python -m maskbench.cli train --method masking --model "$MODEL" --task sst2 --seed 1 --lr 1e-3 \
      --max-train-examples 4000 --epochs 2 --precision "$precision" --device cuda --data-dir "$DATA" \
      --out "$OUT/run_$precision"
done
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
summary = {p: json.loads((out / f"step_time_{p}.json").read_text())["results"][0] for p in ("fp32", "bf16")}
keys = ("dev_score", "history", "train_examples_per_s", "device", "precision", "tf32", "optimizer", "model")
runs = {p: json.loads((out / f"run_{p}" / "metrics.json").read_text()) for p in ("bf16", "fp32")}
result = {"step_time": summary, "runs": {p: {k: run.get(k) for k in keys} for p, run in runs.items()}}
(out / "gpu_check.json").write_text(json.dumps(result, indent=2) + "\n")
for p, r in summary.items():
    print(f"bert-base {p}: masking {1000 * r['masking_step_s']:.1f} ms, finetuning {1000 * r['finetuning_step_s']:.1f} ms, ratio {r['ratio']:.3f}")
for p, run in runs.items():
    print(f"masking run ({p}): dev {run['dev_score']:.4f}, {run['train_examples_per_s']:.0f} train examples/s on {run['device']}")
PY
