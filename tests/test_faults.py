"""Fault injection: a run killed (SIGKILL) at any point of a checkpoint write resumes to exactly the numbers of an
uninterrupted run, and no temporary folder of the killed write survives the resumed run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import pytest
from safetensors.torch import load_file

from conftest import DATA_DIR, needs_data, save_tiny_bert
from maskbench.training.train import TrainConfig, train

pytestmark = [needs_data, pytest.mark.xdist_group("faults")]  # its module fixture is built once, on one worker

#: where the second checkpoint write (after epoch 2, replacing epoch 1's) is killed
KILL_POINTS = ["before tensors", "mid tensors", "before state", "before first rename", "between renames",
               "before old removed"]

KILLER = textwrap.dedent('''
    import os, signal, sys
    import maskbench.training.checkpoint as checkpoint
    import maskbench.io.fileio as fileio
    from maskbench.training.train import TrainConfig, train

    point, config = sys.argv[1], eval(sys.argv[2])
    calls = {"save": 0, "replace": 0, "rmtree": 0}
    real_save, real_replace, real_rmtree = checkpoint.save_file, fileio.os.replace, fileio.shutil.rmtree

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def save_file(tensors, path, *args, **kwargs):
        calls["save"] += 1
        if calls["save"] == 2 and point == "before tensors":
            die()
        real_save(tensors, path, *args, **kwargs)
        if calls["save"] == 2 and point == "mid tensors":
            size = os.path.getsize(path)
            with open(path, "r+b") as handle:
                handle.truncate(size // 3)
            die()
        if calls["save"] == 2 and point == "before state":
            die()

    class Os:
        def __getattr__(self, name):
            return getattr(os, name)

        @staticmethod
        def replace(source, target):
            if calls["save"] == 2 and str(target).endswith(("checkpoint", ".checkpoint.old")):
                calls["replace"] += 1  # 1: previous checkpoint -> .checkpoint.old, 2: new one -> checkpoint
                if point == "before first rename" and calls["replace"] == 1:
                    die()
                if point == "between renames" and calls["replace"] == 2:
                    die()
            real_replace(source, target)

    class Shutil:
        def __getattr__(self, name):
            import shutil
            return getattr(shutil, name)

        @staticmethod
        def rmtree(path, *args, **kwargs):
            if calls["save"] == 2 and point == "before old removed" and str(path).endswith(".checkpoint.old") \\
                    and calls["replace"] >= 2:
                die()
            real_rmtree(path, *args, **kwargs)

    checkpoint.save_file, fileio.os, fileio.shutil = save_file, Os(), Shutil()
    train(TrainConfig(**config))
''')


def _config(model_dir, out) -> TrainConfig:
    return TrainConfig(method="masking", model=str(model_dir), task="sst2", seed=3, lr=1e-2, batch_size=8, epochs=3,
                       patience=3, max_train_examples=48, max_eval_examples=24, max_length=32,
                       data_dir=str(DATA_DIR), out=str(out))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A tiny random BERT and the uninterrupted run every killed run must reproduce."""
    root = tmp_path_factory.mktemp("faults")
    save_tiny_bert(root / "tiny-bert")
    metrics = train(_config(root / "tiny-bert", root / "reference"))
    return root, metrics


@pytest.mark.parametrize("point", KILL_POINTS)
def test_killed_checkpoint_write_resumes_exactly_and_leaves_nothing(reference, point, capsys):
    root, expected = reference
    run_dir = root / point.replace(" ", "-")
    config = _config(root / "tiny-bert", run_dir)
    process = subprocess.run([sys.executable, "-c", KILLER, point, repr(config.to_dict())],
                             capture_output=True, text=True, timeout=600)
    assert process.returncode == -signal.SIGKILL, process.stderr[-2000:]
    assert not (run_dir / "metrics.json").exists()
    leftovers = [p.name for p in run_dir.iterdir() if p.name.startswith(".checkpoint.")]
    if point not in ("before old removed",):
        assert leftovers, "the kill left no trace; the fault was not injected where intended"

    capsys.readouterr()
    resumed = train(config)
    # it resumed (the previous checkpoint, put back when the kill fell between the renames), not started afresh
    done = 2 if point == "before old removed" else 1
    assert f"resuming {run_dir} after epoch {done}" in capsys.readouterr().out
    for key in ("history", "dev_score", "best_epoch", "epochs_run", "config_hash", "sparsity", "test_score"):
        assert resumed[key] == expected[key], key
    a, b = load_file(run_dir / "predictions.safetensors"), load_file(root / "reference" / "predictions.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert (run_dir / "masks" / "masks.safetensors").read_bytes() == \
        (root / "reference" / "masks" / "masks.safetensors").read_bytes()
    assert sorted(p.name for p in run_dir.iterdir()) == ["masks", "metrics.json", "predictions.safetensors"]
    json.loads((run_dir / "metrics.json").read_text())


def test_leftovers_of_killed_writes_are_removed_by_the_next_write(tmp_path):
    from maskbench.io.fileio import MARKER_FILE, atomic_directory, atomic_path

    target = tmp_path / "masks"
    marked = tmp_path / ".masks.k1ll3d.tmp"
    marked.mkdir()
    (marked / MARKER_FILE).write_text('{"kind": "masks"}')
    (marked / "masks.safetensors").write_bytes(b"half")
    (tmp_path / ".masks.empty.tmp").mkdir()
    foreign = tmp_path / ".masks.user.tmp"  # same pattern, but not written by maskbench: kept
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine\n")
    (tmp_path / ".metrics.json.abc.tmp").write_text("{")
    with atomic_directory(target, "masks") as tmp:
        (tmp / "masks.safetensors").write_bytes(b"whole")
    with atomic_path(tmp_path / "metrics.json") as tmp:
        tmp.write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".masks.user.tmp", "masks", "metrics.json"]
    assert (foreign / "notes.txt").read_text() == "mine\n"
    assert sorted(p.name for p in target.iterdir()) == [MARKER_FILE, "masks.safetensors"]


def test_symlink_in_place_of_an_output_directory_is_refused(tmp_path):
    from maskbench.io.errors import OutputError
    from maskbench.io.fileio import atomic_directory

    (tmp_path / "users-data").mkdir()
    (tmp_path / "users-data" / "keep.txt").write_text("x")
    (tmp_path / "prepared").symlink_to(tmp_path / "users-data")
    with pytest.raises(OutputError, match="exists and is not a directory"):
        with atomic_directory(tmp_path / "prepared", "prepared"):
            pass
    assert (tmp_path / "users-data" / "keep.txt").read_text() == "x" and (tmp_path / "prepared").is_symlink()
