"""Ensembles of seeds: the three combining methods, the choice on dev, test evaluation, tagging tasks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import save_file

from maskbench.io.errors import ConfigError, DataError
from maskbench.records import load_split, prediction_tensors
from maskbench.results.ensemble import (
    ENSEMBLE_METHODS,
    choose_ensemble,
    ensemble_predictions,
    score_ensembles,
    write_ensemble,
)
from maskbench.results.evaluate import evaluate_test, write_evaluation
from run_records import write_run


def test_the_three_methods_can_disagree():
    # member 1 is very sure of label 0, members 2 and 3 mildly prefer label 1
    logits = [np.array([[10.0, 0.0]]), np.array([[0.0, 0.5]]), np.array([[0.0, 0.5]])]
    assert ensemble_predictions("majority_vote", logits).tolist() == [1]
    assert ensemble_predictions("mean_logits", logits).tolist() == [0]  # mean logits 3.33 vs 0.33
    # mean probabilities: label 0 ≈ (1 + 0.38 + 0.38) / 3 = 0.59
    assert ensemble_predictions("mean_probabilities", logits).tolist() == [0]


#: one example on which the three rules give three answers: member logits (rows) over labels (0, 1, 2).
#: majority vote: members 1 and 2 vote 0 → 0. Mean logits (−2, −1.7, 1.33) → 2: labels 0 and 1 each have one
#: −10. Mean probabilities (0.340, 0.414, 0.246) → 1: member 3 is sure of 1 (0.88), the −10s cost no probability.
DISAGREE = np.array([[2.0, -10.0, 1.5], [2.0, 1.9, 1.5], [-10.0, 3.0, 1.0]])
DISAGREE_ANSWERS = {"majority_vote": 0, "mean_probabilities": 1, "mean_logits": 2}


def _disagreeing(rows: list[tuple[int, int, int]], width: int = 3) -> list[np.ndarray]:
    """Members' logits of examples like :data:`DISAGREE`, example ``(a, b, c)`` with majority vote ``a``, mean
    probabilities ``b`` and mean logits ``c``; the other labels get −20 (from every member)."""
    members = np.full((3, len(rows), width), -20.0)
    for n, labels in enumerate(rows):
        members[:, n, list(labels)] = DISAGREE
    return list(members)


@pytest.mark.parametrize("method", ENSEMBLE_METHODS)
def test_each_rule_gives_its_own_answer_where_the_three_disagree(method):
    """Fails for mean probabilities computed as the softmax of the mean logits (that answers 2), for mean logits
    computed from probabilities (answers 1), and for a vote weighted by confidence (answers 1)."""
    assert ensemble_predictions(method, list(DISAGREE[:, None, :])).tolist() == [DISAGREE_ANSWERS[method]]
    # the same with the labels renamed, among other labels: each rule follows its label
    rows = [(0, 1, 2), (2, 0, 1), (1, 2, 0), (4, 3, 5), (5, 1, 3)]
    position = {"majority_vote": 0, "mean_probabilities": 1, "mean_logits": 2}[method]
    assert ensemble_predictions(method, _disagreeing(rows, 6)).tolist() == [row[position] for row in rows]


def test_the_ensemble_chosen_on_dev_is_the_one_scored_on_test(tmp_path):
    """Dev: every example is a :data:`DISAGREE` example; gold labels picked so that majority vote gets 1, mean
    logits 2 and mean probabilities 3 of 6 right: mean probabilities is chosen. Test: majority vote would get 3,
    mean probabilities 2 and mean logits 1 of 6: the recorded ensemble test score must be 2/6 (fails when test is
    scored with another rule than the chosen one, with the rule best on test, or on the dev predictions)."""
    dev_rows = [(0, 1, 2), (1, 2, 0), (2, 0, 1), (0, 2, 1), (1, 0, 2), (2, 1, 0)]
    dev_gold = [1, 2, 0, 1, 2, 2]  # mean probabilities (row[1]) right on 1-3, mean logits on 4-5, majority vote on 6
    test_rows = [(0, 1, 2), (2, 0, 1), (1, 2, 0), (0, 2, 1), (2, 1, 0), (1, 0, 2)]
    test_gold = [0, 2, 1, 2, 1, 2]  # majority vote right on 1-3, mean probabilities on 4-5, mean logits on 6
    dev, test = _disagreeing(dev_rows), _disagreeing(test_rows)
    paths = [_write_run(tmp_path / f"s{seed}", seed, "trec", "accuracy", dev[n], dev_gold,
                        test=(test[n], np.array(test_gold))) for n, seed in enumerate((1, 2, 3))]
    choice = write_ensemble(paths, tmp_path / "ensemble.json")
    assert choice["dev_scores"] == {"majority_vote": 1 / 6, "mean_logits": 2 / 6, "mean_probabilities": 3 / 6}
    assert choice["chosen"] == "mean_probabilities" and choice["chosen_dev_score"] == 0.5
    singles = [float((member.argmax(-1) == dev_gold).mean()) for member in dev]
    assert choice["single_dev_mean"] == pytest.approx(np.mean(singles))
    result = write_evaluation(paths, tmp_path / "ensemble.json", tmp_path / "evaluation.json")
    assert result["ensemble"] == {"method": "mean_probabilities", "members": 3, "score": 2 / 6,
                                  "error_rate": pytest.approx(100 * 4 / 6)}
    assert json.loads((tmp_path / "evaluation.json").read_text())["ensemble"]["score"] == 2 / 6
    assert result["single"]["scores"] == [float((m.argmax(-1) == test_gold).mean()) for m in test]


def test_majority_vote_ties_go_to_the_higher_mean_probability():
    logits = [np.array([[2.0, 0.0, 0.0]]), np.array([[3.0, 0.0, 0.0]]),
              np.array([[0.0, 5.0, 0.0]]), np.array([[0.0, 5.0, 0.0]])]
    assert ensemble_predictions("majority_vote", logits).tolist() == [1]
    assert ensemble_predictions("majority_vote", logits[:3]).tolist() == [0]  # 2 votes beat 1, however sure


def test_unknown_method_is_refused():
    with pytest.raises(ConfigError, match="unknown ensemble method 'median'"):
        ensemble_predictions("median", [np.zeros((1, 2))])


def _write_run(directory, seed, task, metric, dev_logits, dev_labels, test=None, lengths=None):
    tensors = {}
    if test is not None:
        tensors["test_logits"] = np.asarray(test[0], dtype=np.float32)
        tensors["test_labels"] = np.asarray(test[1])
        if lengths is not None:
            tensors["test_lengths"] = np.asarray(test[2])
    config = {"method": "masking", "model": "m", "task": task, "seed": seed, "lr": 1e-3, "epochs": 3,
              "mask": {"initial_sparsity": 0.05}, "out": str(directory)}
    metrics = {"task": task, "method": "masking", "model": "m", "metric": metric, "lr": 1e-3, "seed": seed,
               "test_score": None if test is None else float((np.asarray(test[0]).argmax(-1) == test[1]).mean()),
               "config": config}
    # a complete record whose dev score is what the stored dev predictions give (maskbench.records checks both)
    return write_run(directory, metrics, dev_logits, dev_labels, lengths, extra_tensors=tensors)


def test_choice_on_dev_then_test_evaluation(tmp_path):
    rng = np.random.default_rng(0)
    dev_labels, test_labels = rng.integers(0, 6, 60), rng.integers(0, 6, 50)
    paths = []
    for seed in (1, 2, 3, 4):
        noisy = lambda labels: np.eye(6)[labels] * 2 + rng.normal(0, 1.2, (len(labels), 6))  # noqa: E731
        paths.append(_write_run(tmp_path / f"s{seed}", seed, "trec", "accuracy", noisy(dev_labels), dev_labels,
                                test=(noisy(test_labels), test_labels)))
    choice = write_ensemble(paths, tmp_path / "ensemble.json")
    assert set(choice["dev_scores"]) == set(ENSEMBLE_METHODS) and choice["members"] == 4
    assert choice["chosen_dev_score"] == max(choice["dev_scores"].values())
    assert choice["chosen_dev_score"] >= choice["single_dev_mean"]  # averaging 4 noisy members helps here
    result = write_evaluation(paths, tmp_path / "ensemble.json", tmp_path / "evaluation.json")
    assert result["has_test"] and result["ensemble"]["method"] == choice["chosen"]
    singles = [json.loads(p.read_text())["test_score"] for p in paths]
    assert result["single"]["mean"] == pytest.approx(np.mean(singles))
    assert result["single"]["error_rate"] == pytest.approx(100 * (1 - np.mean(singles)))
    assert result["test_size"] == 50
    # the ensemble choice belongs to these runs only
    with pytest.raises(ConfigError, match="other runs"):
        evaluate_test(paths[:3], choice)


def test_task_without_test_split_records_has_test_false(tmp_path):
    labels = np.array([0, 1, 1, 0])
    paths = [_write_run(tmp_path / f"s{seed}", seed, "mrpc", "accuracy", np.eye(2)[labels], labels)
             for seed in (1, 2)]
    result = evaluate_test(paths, choose_ensemble(paths))
    assert result["has_test"] is False and "single" not in result


def test_tagging_ensemble_scores_entities_per_sentence(tmp_path):
    from maskbench.data.tasks import get_task

    names = list(get_task("conll2003").label_names)
    tags = ["B-PER", "I-PER", "O", "B-LOC", "O"]
    labels = np.array([names.index(t) for t in tags])
    lengths = [3, 2]  # two sentences: (B-PER I-PER O) (B-LOC O)
    perfect = np.eye(len(names))[labels] * 5
    wrong = perfect.copy()
    wrong[3] = np.eye(len(names))[names.index("O")] * 5  # misses the location
    paths = [_write_run(tmp_path / f"s{seed}", seed, "conll2003", "seqeval_f1", logits, labels, lengths=lengths)
             for seed, logits in ((1, perfect), (2, perfect), (3, wrong))]
    choice = choose_ensemble(paths)
    assert choice["dev_scores"]["majority_vote"] == 1.0
    other_lengths = _write_run(tmp_path / "s4", 4, "conll2003", "seqeval_f1", perfect, labels, lengths=[4, 1])
    with pytest.raises(DataError, match="lengths differ"):
        choose_ensemble([*paths, other_lengths])


def test_members_of_another_configuration_are_refused(tmp_path):
    labels = np.array([0, 1])
    first = _write_run(tmp_path / "a", 1, "mrpc", "accuracy", np.eye(2)[labels], labels)
    second = _write_run(tmp_path / "b", 2, "mrpc", "accuracy", np.eye(2)[labels], labels)
    record = json.loads(second.read_text())
    record["config"]["epochs"] = 10
    second.write_text(json.dumps(record))
    with pytest.raises(ConfigError, match="refusing to combine runs of different configurations"):
        choose_ensemble([first, second])


def _members(rng, words=3000, tags=9, members=3):
    """Per-word logits of a few confident-but-fallible taggers, each with its own per-word offset."""
    gold = rng.integers(0, tags, words)
    logits = []
    for _ in range(members):
        member = rng.normal(0.0, 2.0, (words, tags)) + 6.0 * np.eye(tags)[gold] * (rng.random(words) < 0.9)[:, None]
        logits.append((member + rng.normal(0.0, 5.0, (words, 1))).astype(np.float32))
    return gold, logits


def test_tagging_predictions_keep_the_top_tags_and_ensemble_like_the_logits(tmp_path):
    rng = np.random.default_rng(11)
    gold, logits = _members(rng)
    lengths = np.full(len(gold) // 10, 10)
    loaded = []
    for n, member in enumerate(logits):
        tensors = prediction_tensors({"dev": {"logits": member, "labels": gold, "lengths": lengths}}, "tagging")
        assert sorted(tensors) == ["dev_labels", "dev_lengths", "dev_num_labels", "dev_top_labels",
                                   "dev_top_log_probs"]
        assert tensors["dev_top_log_probs"].dtype == np.float16 and tensors["dev_top_labels"].shape == (len(gold), 3)
        assert tensors["dev_labels"].dtype == tensors["dev_lengths"].dtype == np.uint8  # gold stored compactly
        (tmp_path / f"r{n}").mkdir()
        save_file(tensors, str(tmp_path / f"r{n}" / "predictions.safetensors"))
        loaded.append(load_split(tmp_path / f"r{n}", "dev"))
        assert np.array_equal(loaded[-1]["labels"], gold) and np.array_equal(loaded[-1]["lengths"], lengths)
        assert loaded[-1]["labels"].dtype == loaded[-1]["lengths"].dtype == np.int64  # and read back as int64
        assert np.array_equal(loaded[-1]["logits"].argmax(-1), member.argmax(-1))  # single-run predictions exact
        np.testing.assert_allclose(np.exp(loaded[-1]["logits"]).sum(-1), 1.0, atol=0.01)  # a distribution
    # per word and tag: kept by every member (among its 3 most probable tags)
    kept = np.logical_and.reduce([np.argsort(np.argsort(-m, -1), -1) < 3 for m in logits])
    for method in ENSEMBLE_METHODS:
        exact = ensemble_predictions(method, logits)
        compact = ensemble_predictions(method, [m["logits"] for m in loaded])
        rows = np.arange(len(gold))
        decided_by_kept = kept[rows, exact] & kept[rows, compact]
        if method == "majority_vote":  # votes are exact; only the tie-break uses probabilities
            votes = np.stack([m.argmax(-1) for m in logits])
            decided_by_kept |= ~((votes[0] == votes[1]) | (votes[0] == votes[2]) | (votes[1] == votes[2]))
        # where the deciding tags were kept by every member, only float16 rounding may flip a word
        flips = (exact != compact) & decided_by_kept
        assert flips.mean() < 0.002, method
        assert (exact == compact).mean() > 0.98, method  # 99.9 % on real POS taggers (3 seeds)
    for metric, names in (("accuracy", ()), ("seqeval_f1", ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG",
                                                              "I-ORG", "B-MISC", "I-MISC"])):
        from_logits = score_ensembles([{"logits": x, "labels": gold, "lengths": lengths} for x in logits],
                                      metric, names)
        from_top_tags = score_ensembles(loaded, metric, names)
        for method in ENSEMBLE_METHODS:
            assert abs(from_logits[method] - from_top_tags[method]) < 0.01, (metric, method)


def test_sentence_predictions_keep_float32_logits():
    logits = np.array([[1.5, -0.5], [0.25, 3.0]], dtype=np.float32)
    tensors = prediction_tensors({"dev": {"logits": logits, "labels": np.array([0, 1])}}, "pair")
    assert sorted(tensors) == ["dev_labels", "dev_logits"]
    assert tensors["dev_logits"].dtype == np.float32 and np.array_equal(tensors["dev_logits"], logits)
    assert tensors["dev_labels"].dtype == np.uint8


@pytest.mark.parametrize("values, dtype", [
    (np.array([0, 8, 255]), np.uint8), (np.array([0, 256]), np.uint16), (np.array([70_000]), np.uint32),
    (np.array([2**40]), np.int64), (np.array([-1, 0, 3]), np.int64), (np.array([0.5, 1.0]), np.float64),
    (np.array([], np.int64), np.int64)])
def test_gold_labels_and_lengths_are_stored_in_the_smallest_exact_dtype(tmp_path, values, dtype):
    tensors = prediction_tensors({"dev": {"logits": np.zeros((len(values), 2), np.float32), "labels": values}},
                                 "single")
    assert tensors["dev_labels"].dtype == dtype and np.array_equal(tensors["dev_labels"], values)
    save_file(tensors, str(tmp_path / "predictions.safetensors"))
    loaded = load_split(tmp_path, "dev")["labels"]
    assert np.array_equal(loaded, values) and loaded.dtype == (np.int64 if values.dtype.kind == "i" else dtype)


_TOP = {"dev_top_labels": np.array([[1, 0], [2, 1]], np.uint8),
        "dev_top_log_probs": np.array([[-0.1, -2.5], [-0.05, -3.2]], np.float16),
        "dev_num_labels": np.array([3]), "dev_labels": np.zeros(2, np.int64)}


@pytest.mark.parametrize("tensors, expected", [
    ({"dev_logits": np.zeros((2, 3), np.float32), "dev_top_log_probs": np.zeros((2, 3), np.float16),
      "dev_labels": np.zeros(2, np.int64)}, "either dev_logits or dev_top_labels"),
    ({"dev_logits": np.zeros((2, 3), np.float32)}, "expected dev_labels"),
    ({"dev_logits": np.zeros((3, 3), np.float32), "dev_labels": np.zeros(2, np.int64)}, "one row per label"),
    ({"dev_logits": np.full((2, 3), np.nan, np.float32), "dev_labels": np.zeros(2, np.int64)}, "finite"),
    ({**_TOP, "dev_top_labels": np.array([[1, 1], [2, 1]], np.uint8)}, "distinct tags"),
    ({**_TOP, "dev_top_labels": np.array([[1, 3], [2, 1]], np.uint8)}, "below dev_num_labels"),
    ({**_TOP, "dev_top_log_probs": np.array([[0.5, -2.5], [-0.05, -3.2]], np.float16)}, "(≤ 0)"),
    ({key: value for key, value in _TOP.items() if key != "dev_num_labels"}, "same shape"),
    ({key: value for key, value in _TOP.items() if key != "dev_top_labels"}, "same shape"),
])
def test_malformed_predictions_are_refused_with_the_file_named(tmp_path, tensors, expected):
    save_file(tensors, str(tmp_path / "predictions.safetensors"))
    with pytest.raises(DataError, match="predictions.safetensors") as error:
        load_split(tmp_path, "dev")
    assert expected in str(error.value)


def test_top_tags_load_as_a_distribution_with_the_kept_log_probs(tmp_path):
    save_file(_TOP, str(tmp_path / "predictions.safetensors"))
    scores = load_split(tmp_path, "dev")["logits"]
    kept = _TOP["dev_top_log_probs"].astype(np.float64)
    assert scores[0, 1] == kept[0, 0] and scores[0, 0] == kept[0, 1] and scores[1, 2] == kept[1, 0]
    np.testing.assert_allclose(np.exp(scores).sum(-1), 1.0)
    assert scores.argmax(-1).tolist() == [1, 2]
