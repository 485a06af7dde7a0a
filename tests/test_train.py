"""One training run end to end: outputs, determinism, and a real masking run that learns SST-2."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import transformers
from safetensors.torch import load_file

from conftest import check_recorded_scores
from maskbench import load_masked_model
from maskbench.cli import main
from maskbench.data.models import load_tokenizer
from maskbench.io.errors import MaskbenchError
from maskbench.results.aggregate import aggregate_runs
from maskbench.training.methods import record_artefact_sizes, run_artefact_sizes
from maskbench.training.train import TrainConfig, predict, raw_splits, seed_everything, sorted_eval_loader, train


def _config(model_dir, data_dir, out, **overrides) -> TrainConfig:
    values = dict(method="masking", model=str(model_dir), task="sst2", seed=3, lr=1e-2, batch_size=16, epochs=2,
                  max_train_examples=64, max_eval_examples=48, data_dir=str(data_dir), out=str(out))
    values.update(overrides)
    return TrainConfig(**values)


def test_same_seed_same_numbers_and_outputs(tiny_bert_dir, data_dir, tmp_path):
    first = train(_config(tiny_bert_dir, data_dir, tmp_path / "a"))
    second = train(_config(tiny_bert_dir, data_dir, tmp_path / "b"))
    assert first["history"] == second["history"] and first["dev_score"] == second["dev_score"]
    assert first["config_hash"] == second["config_hash"]
    a, b = load_file(tmp_path / "a" / "predictions.safetensors"), load_file(tmp_path / "b" / "predictions.safetensors")
    assert all((a[k] == b[k]).all() for k in a)
    assert (tmp_path / "a" / "masks" / "masks.safetensors").read_bytes() == \
        (tmp_path / "b" / "masks" / "masks.safetensors").read_bytes()
    other_seed = train(_config(tiny_bert_dir, data_dir, tmp_path / "c", seed=4))
    assert other_seed["history"] != first["history"]


@pytest.mark.parametrize("seed", [0, 1, 3, 2**31 - 1])
def test_seeding_leaves_every_generator_as_transformers_set_seed_does(seed):
    """Committed runs were seeded by ``transformers.set_seed``: the same seed must give the same numbers."""
    def states():
        return random.getstate(), np.random.get_state()[1].tolist(), torch.get_rng_state().tolist()

    transformers.set_seed(seed)
    theirs = states()
    random.seed(seed + 1), np.random.seed(seed + 1), torch.manual_seed(seed + 1)
    seed_everything(seed)
    assert states() == theirs


def test_a_training_process_imports_no_peft_unless_its_method_needs_it(tiny_bert_dir, data_dir, tmp_path):
    """peft (through transformers.trainer_utils) costs every training process seconds of imports."""
    out = tmp_path / "run"
    script = ("import sys; from maskbench.cli import main; "
              f"code = main(['train', '--method', 'masking', '--task', 'sst2', '--model', {str(tiny_bert_dir)!r}, "
              f"'--data-dir', {str(data_dir)!r}, '--lr', '1e-2', '--epochs', '1', '--max-train-examples', '16', "
              f"'--max-eval-examples', '16', '--out', {str(out)!r}]); "
              "print(sorted(m for m in sys.modules if m.split('.')[0] == 'peft' or m == 'transformers.trainer_utils'));"
              " sys.exit(code)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert (out / "metrics.json").is_file()


def test_run_directory_contents(tiny_bert_dir, data_dir, tmp_path):
    metrics = train(_config(tiny_bert_dir, data_dir, tmp_path / "run", epochs=3, patience=1))
    on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert on_disk["dev_score"] == metrics["dev_score"] == max(on_disk["dev_scores"])
    assert on_disk["config"]["lr"] == 1e-2 and on_disk["seed"] == 3 and on_disk["metric"] == "accuracy"
    assert {"torch", "transformers", "maskbench"} <= set(on_disk["versions"])
    assert on_disk["sizes"] == {"train": 64, "dev": 48}
    assert 0 < on_disk["sparsity"] < 1 and on_disk["train_examples_per_s"] > 0
    predictions = load_file(tmp_path / "run" / "predictions.safetensors")
    assert predictions["dev_logits"].shape == (48, 2)
    check_recorded_scores(tmp_path / "run")  # dev and test scores are those of the saved predictions
    # the saved masks rebuild the best epoch's model: same dev logits as the saved predictions (the best epoch's),
    # and not the last epoch's model: the run stopped one epoch after its best (fails when the best epoch's
    # parameters are not restored before saving, or the masks are rebuilt from another seed's initial scores)
    assert on_disk["best_epoch"] < on_disk["epochs_run"]
    model = load_masked_model(tmp_path / "run" / "masks")
    description = model.maskbench_mask_description
    assert description["task"] == "sst2" and description["label_names"] == ["negative", "positive"]
    config = _config(tiny_bert_dir, data_dir, tmp_path / "run")
    tokenizer = load_tokenizer(str(tiny_bert_dir))
    dev = raw_splits("sst2", str(data_dir), False, tokenizer, config.max_length, {"dev": 48}, only=["dev"])["dev"]
    for merge in (True, False):  # masks multiplied into the weights, or kept as masked layers
        rebuilt = load_masked_model(tmp_path / "run" / "masks", merge=merge)
        logits = predict(rebuilt, sorted_eval_loader(dev, tokenizer.pad_token_id, config.eval_batch_size), "single",
                         torch.device("cpu"))["logits"]
        torch.testing.assert_close(torch.from_numpy(logits), predictions["dev_logits"], rtol=1e-5, atol=1e-5)
        assert (logits.argmax(-1) == predictions["dev_logits"].numpy().argmax(-1)).all()


def test_finetuning_run_saves_weights_on_request(tiny_bert_dir, data_dir, tmp_path):
    metrics = train(_config(tiny_bert_dir, data_dir, tmp_path / "ft", method="finetuning", lr=1e-3,
                            save_weights=True, epochs=1))
    assert metrics["sparsity"] is None and (tmp_path / "ft" / "model" / "model.safetensors").is_file()
    assert not (tmp_path / "ft" / "masks").exists()


@pytest.mark.parametrize("method, lr", [("masking", 1e-2), ("lora", 1e-3), ("finetuning", 1e-3)])
def test_a_run_records_its_artefact_sizes_so_the_aggregate_needs_no_artefact(tiny_bert_dir, data_dir, tmp_path,
                                                                           method, lr):
    run = tmp_path / "run"
    metrics = train(_config(tiny_bert_dir, data_dir, run, method=method, lr=lr, epochs=1))
    measured = run_artefact_sizes(run, method)
    assert metrics["artefact_sizes"] == measured
    assert json.loads((run / "metrics.json").read_text())["artefact_sizes"] == measured
    if method == "finetuning":
        assert measured is None
    else:
        assert measured["mask_bytes" if method == "masking" else "task_bytes"] > 0
    with_artefact = aggregate_runs([metrics], [str(run / "metrics.json")])
    # the record alone (what the committed reference results keep) aggregates to the same sizes
    alone = tmp_path / "record-only"
    alone.mkdir()
    shutil.copy(run / "metrics.json", alone / "metrics.json")
    without = aggregate_runs([json.loads((alone / "metrics.json").read_text())], [str(alone / "metrics.json")])
    assert without["artefacts"] == with_artefact["artefacts"]
    assert with_artefact["artefacts"] == (None if method == "finetuning" else {"3": measured})
    # a run recorded before runs recorded their sizes: filled in from its artefact while it is there
    older = {k: v for k, v in metrics.items() if k != "artefact_sizes"}
    (run / "metrics.json").write_text(json.dumps(older))
    assert record_artefact_sizes(run) == measured
    assert json.loads((run / "metrics.json").read_text()) == json.loads(json.dumps(metrics))
    if method != "finetuning":  # ... and without it, a clear error names the missing file
        (alone / "metrics.json").write_text(json.dumps(older))
        with pytest.raises(MaskbenchError, match="record-only.*missing"):
            record_artefact_sizes(alone)
        with pytest.raises(MaskbenchError, match="record-only.*missing"):
            aggregate_runs([older], [str(alone / "metrics.json")])


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    code = main(["train", "--method", "masking", "--task", "nope", "--lr", "1e-3", "--out", str(tmp_path / "x")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("maskbench: error:") and "unknown task 'nope'" in err and "\n" not in err
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_real_masking_run_beats_majority_baseline_on_sst2(data_dir, tmp_path):
    """The offline MiniLM, masked, on 800 real SST-2 training sentences; scored on the full real dev set."""
    metrics = train(TrainConfig(method="masking", model="minilm", task="sst2", seed=1, lr=5e-4, batch_size=32,
                                epochs=2, max_train_examples=800, data_dir=str(data_dir), out=str(tmp_path / "run")))
    assert metrics["sizes"]["dev"] == 872
    majority = 444 / 872  # positive sentences in the SST-2 dev set
    assert metrics["dev_score"] > majority + 0.05
    check_recorded_scores(tmp_path / "run")  # the recorded score is that of the saved predictions
