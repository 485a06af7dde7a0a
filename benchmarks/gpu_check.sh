#!/usr/bin/env bash
# GPU check (run on a machine with a CUDA GPU, from the repository root):
#   bash benchmarks/gpu_check.sh [OUT_DIR]
# 1. the bert-base-sized step-time benchmark, masking vs finetuning, fp32 (TF32 matmuls) and bf16 autocast;
# 2. one short masking run end to end (offline MiniLM, SST-2 subset from $MASKBENCH_DATA_DIR) in bf16;
# writes step_time_fp32.json, step_time_bf16.json, run/metrics.json and gpu_check.json (a summary) to OUT_DIR.
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
python -m maskbench.cli train --method masking --model minilm --task sst2 --seed 1 --lr 1e-3 \
    --max-train-examples 4000 --epochs 2 --precision bf16 --device cuda --data-dir "$DATA" --out "$OUT/run"
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
summary = {p: json.loads((out / f"step_time_{p}.json").read_text())["results"][0] for p in ("fp32", "bf16")}
run = json.loads((out / "run" / "metrics.json").read_text())
result = {"step_time": summary, "run": {k: run[k] for k in ("dev_score", "history", "train_examples_per_s",
                                                           "device", "precision", "tf32", "optimizer")}}
(out / "gpu_check.json").write_text(json.dumps(result, indent=2) + "\n")
for p, r in summary.items():
    print(f"bert-base {p}: masking {1000 * r['masking_step_s']:.1f} ms, finetuning {1000 * r['finetuning_step_s']:.1f} ms, ratio {r['ratio']:.3f}")
print(f"masking run (bf16): dev {run['dev_score']:.4f}, {run['train_examples_per_s']:.0f} train examples/s on {run['device']}")
PY
