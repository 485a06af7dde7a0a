"""CONTRIBUTING.md's recipe "Add a method", followed step by step: a toy method that trains only the LayerNorm
parameters (and the head), declared in a package of its own that registers it through the entry-point group
``maskbench.training.methods``, then trained through the CLI and through the workflow up to Table 1 and the bytes table
(Table 9), without touching any module of maskbench.

The package is "installed" the way pip leaves a package: its modules and a ``.dist-info`` folder with
``entry_points.txt`` on the path (here through PYTHONPATH, for the CLI and Snakemake subprocesses).

Checked to fail on the code before (``PYTHONPATH=/work/main/src``): ``--method layernorm`` is not a choice of
``maskbench train``, and the workflow's configuration refuses the method name.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
from safetensors.torch import load_file

from conftest import REPO, needs_data, snakemake

#: recipe step 1: the declaration (torch-free: the workflow reads it while planning) with the method's settings
DECLARATION = '''
from dataclasses import dataclass, field

from maskbench.training.method_registry import MethodInfo


@dataclass
class LayerNormSettings:
    layernorm_bias_only: bool = field(default=False, metadata={"help": "train only the LayerNorm biases"})


LAYERNORM = MethodInfo("layernorm", "LayerNorm", "toy_layernorm.method:METHOD", settings=LayerNormSettings)
'''

#: recipe step 2: the implementation (a subset of the model's own parameters trains: SubsetMethod saves, loads,
#: sizes and serves it)
IMPLEMENTATION = '''
from torch import nn

from maskbench.training.methods.subset import SubsetMethod


class LayerNormOnly(SubsetMethod):
    name = "layernorm"
    artefact = "layernorm"
    tensor_files = ("layernorm.safetensors",)

    def trains(self, model, config):
        norms = {name for name, module in model.named_modules() if isinstance(module, nn.LayerNorm)}
        bias_only = config.layernorm.layernorm_bias_only
        return lambda name: name.rpartition(".")[0] in norms and (not bias_only or name.endswith(".bias"))


METHOD = LayerNormOnly()
'''


@pytest.fixture
def plugin_env(tmp_path) -> dict[str, str]:
    """The toy method's package, installed on PYTHONPATH (recipe step 3: the entry point)."""
    site = tmp_path / "site"
    package = site / "toy_layernorm"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(DECLARATION))
    (package / "method.py").write_text(textwrap.dedent(IMPLEMENTATION))
    info = site / "toy_layernorm-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-layernorm\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[maskbench.methods]\nlayernorm = toy_layernorm:LAYERNORM\n")
    path = [str(site), str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path), "HF_HUB_OFFLINE": "1"}


def _python(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=600)


def test_a_new_method_trains_from_the_cli(plugin_env, tiny_bert_dir, data_dir, tmp_path):
    listed = _python(plugin_env, "-c", "from maskbench.training.settings import METHODS; print(','.join(METHODS))")
    assert listed.returncode == 0 and listed.stdout.split() == ["masking,finetuning,lora,bitfit,ia3,layernorm"]
    out = tmp_path / "run"
    result = _python(plugin_env, "-m", "maskbench.cli", "train", "--method", "layernorm", "--layernorm-bias-only",
                     "--model", str(tiny_bert_dir), "--task", "sst2", "--lr", "1e-2", "--batch-size", "16",
                     "--epochs", "1", "--max-train-examples", "32", "--max-eval-examples", "32",
                     "--max-length", "32", "--data-dir", str(data_dir), "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((out / "metrics.json").read_text())
    assert record["method"] == "layernorm" and record["config"]["layernorm"] == {"layernorm_bias_only": True}
    saved = load_file(out / "layernorm" / "layernorm.safetensors")
    encoder = [name for name in saved if name.startswith("bert.")]
    # 4 blocks x 2 LayerNorms + the embeddings' LayerNorm, biases only; and the head
    assert len(encoder) == 9 and all(name.endswith("LayerNorm.bias") for name in encoder)
    assert any(not name.startswith("bert.") for name in saved)
    assert record["trainable_parameters"] == sum(t.numel() for t in saved.values())
    assert record["artefact_sizes"]["task_bytes"] == (out / "layernorm" / "layernorm.safetensors").stat().st_size
    # the method's own settings are in the run's identity, other methods' are not
    assert record["config_hash"] != _python(plugin_env, "-c", textwrap.dedent(f"""
        from maskbench.training.settings import TrainConfig, config_hash
        config = TrainConfig.from_dict({json.dumps(record["config"])})
        config.layernorm.layernorm_bias_only = False
        print(config_hash(config.result_key()))""")).stdout.strip()
    # the trained model comes back from the artefact (the analyses' loader; the method's load)
    reloaded = _python(plugin_env, "-c", textwrap.dedent(f"""
        from maskbench.analysis.runs import load_run_model
        model = load_run_model({str(out)!r})
        print(type(model).__name__)"""))
    assert reloaded.returncode == 0 and reloaded.stdout.strip() == "BertForSequenceClassification", reloaded.stderr


@needs_data
@pytest.mark.slow(seconds=120)
@pytest.mark.timeout(900)
def test_a_new_method_reaches_table1_and_the_bytes_table(plugin_env, tmp_path, monkeypatch):
    config = tmp_path / "layernorm.yaml"
    config.write_text(textwrap.dedent("""
        results_dir: results
        models:
          minilm: {name: minilm, label: MiniLM}
        tasks: [trec]
        methods: [layernorm]
        seeds: [1]
        lr_grid:
          layernorm: [1.0e-3]
        training: {batch_size: 16, epochs: 1, patience: 1, max_length: 64, max_train_examples: 32,
                   max_eval_examples: 48}
        resources:
          train: {threads: 1, mem_mb: 2000, runtime: 10}
          prepare: {mem_mb: 2000, runtime: 10}
        """))
    for key, value in plugin_env.items():
        monkeypatch.setenv(key, value)
    tables = [f"results/tables/{name}.md" for name in ("table1_dev", "table9_bytes")]
    result = snakemake(tmp_path, *tables, "--cores", "2", "--configfile", str(config), timeout=850)
    assert result.returncode == 0, result.stderr[-5000:]
    table1 = (tmp_path / "results" / "tables" / "table1_dev.md").read_text()
    assert re.search(r"\| MiniLM \| LayerNorm +\| \d+\.\d ± 0\.0 +\|", table1) and "of LayerNorm," in table1, table1
    table9 = (tmp_path / "results" / "tables" / "table9_bytes.md").read_text()
    row = next(line for line in table9.splitlines() if "LayerNorm" in line)
    run = next((tmp_path / "results" / "runs" / "minilm" / "trec" / "layernorm").glob("lr*/seed1"))
    kilobytes = (run / "layernorm" / "layernorm.safetensors").stat().st_size / 1000
    assert f"{kilobytes:,.3f}" in row, (row, kilobytes)
