"""The metric layer (maskbench.data.metrics) against scikit-learn / seqeval on hand-made inputs with known answers, and
on random labels and predictions (hypothesis).

Each known answer is chosen so that a plausible wrong implementation gives another number; the comment next to it
names that implementation (each was checked by breaking ``maskbench.data.metrics`` that way: the test fails).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from seqeval.metrics import f1_score
from seqeval.scheme import IOB2
from sklearn.metrics import accuracy_score, matthews_corrcoef

from maskbench.data.metrics import reported_metric, score_logits, score_predictions
from maskbench.io.errors import ConfigError

BOUNDED = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def _ids(tags: list[str]) -> np.ndarray:
    return np.array([TAGS.index(t) for t in tags])


def _entity_f1(gold: list[list[str]], predicted: list[list[str]]) -> float:
    """maskbench's tagging metric: ``gold``/``predicted`` sentences flattened and cut by their lengths."""
    lengths = [len(s) for s in gold]
    return score_predictions("seqeval_f1", _ids(sum(predicted, [])), _ids(sum(gold, [])), TAGS, lengths)


def test_accuracy_is_the_fraction_of_correct_labels():
    labels, predictions = np.array([0, 1, 2, 1, 0]), np.array([0, 2, 2, 1, 1])
    assert score_predictions("accuracy", predictions, labels) == 0.6 == accuracy_score(labels, predictions)


@pytest.mark.parametrize("labels, predictions, expected", [
    # TP 3, FN 1, FP 1, TN 3: (3·3 − 1·1) / √(4·4·4·4) = 0.5 (F1 would be 0.75, accuracy 0.75)
    ([1, 1, 1, 0, 0, 0, 1, 0], [1, 1, 0, 0, 0, 1, 1, 0], 0.5),
    # every label wrong on a balanced set: −1 (a clipped or absolute MCC gives 0 or 1)
    ([1, 0, 1, 0], [0, 1, 0, 1], -1.0),
    # TP 1, FN 2, FP 0, TN 3: (1·3 − 0·2) / √(1·3·3·5) = 1/√5 (accuracy 0.667)
    ([1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0], 1 / np.sqrt(5)),
])
def test_matthews_at_known_non_trivial_values(labels, predictions, expected):
    score = score_predictions("matthews", np.array(predictions), np.array(labels))
    assert score == pytest.approx(expected, abs=1e-12)
    assert score == pytest.approx(matthews_corrcoef(labels, predictions), abs=1e-12)


def test_matthews_of_three_classes_is_sklearns_multiclass_mcc():
    labels, predictions = np.array([0, 1, 2, 2, 1, 0, 2, 1]), np.array([0, 2, 2, 2, 1, 1, 0, 1])
    # by hand (Gorodkin's R_K): c = 5 correct, s = 8, p = (2, 3, 3), t = (2, 3, 3): (5·8 − 22) / (64 − 22) = 18/42
    assert score_predictions("matthews", predictions, labels) == pytest.approx(18 / 42, abs=1e-12)
    assert score_predictions("matthews", predictions, labels) == pytest.approx(matthews_corrcoef(labels, predictions))


def test_entity_f1_is_micro_averaged_over_entity_types():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-PER", "O", "B-PER"]]
    predicted = [["B-PER", "I-PER", "O", "O"], ["B-PER", "O", "B-PER"]]
    # 3 of 3 predicted entities right, 3 of 4 gold found: F1 = 6/7 (macro-averaging PER and LOC gives (1 + 0) / 2)
    assert _entity_f1(gold, predicted) == pytest.approx(6 / 7)
    assert _entity_f1(gold, predicted) == pytest.approx(f1_score(gold, predicted, mode="strict", scheme=IOB2))
    # a partly found entity counts as wrong: PER (0, 1) predicted as (0, 0): F1 1/2 (token accuracy gives 3/4)
    assert _entity_f1([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "O", "O", "B-LOC"]]) == pytest.approx(0.5)


def test_an_entity_never_continues_across_a_sentence_boundary():
    """Sentences are scored separately: an I- tag at the start of the next sentence starts nothing in strict IOB2
    and never continues the previous sentence's entity."""
    gold = [["B-PER", "I-PER"], ["B-PER", "O"]]
    predicted = [["B-PER", "I-PER"], ["I-PER", "O"]]
    # strict per sentence: predicted {PER (0, 1)} of gold {PER (0, 1), PER (0, 0)}: P = 1, R = 1/2, F1 = 2/3.
    # Scored as one flat sequence (lengths ignored) the prediction is one entity PER (0, 2): F1 = 0;
    # scored per sentence but in seqeval's default (conlleval) mode the I-PER starts an entity: F1 = 1.
    assert _entity_f1(gold, predicted) == pytest.approx(2 / 3)
    assert f1_score(gold, predicted, mode="strict", scheme=IOB2) == pytest.approx(2 / 3)
    assert f1_score([sum(gold, [])], [sum(predicted, [])], mode="strict", scheme=IOB2) == 0.0
    assert f1_score(gold, predicted) == 1.0


@pytest.mark.parametrize("gold, predicted, strict, default", [
    # I- without B-: no entity in strict IOB2, an entity in the default mode
    ([["B-PER", "I-PER", "O", "B-LOC"]], [["I-PER", "I-PER", "O", "B-LOC"]], 2 / 3, 1.0),
    # B-PER I-LOC: strict ends PER at the type change and starts nothing; default makes I-LOC a LOC entity
    ([["B-PER", "O", "B-LOC", "O"]], [["B-PER", "I-LOC", "O", "O"]], 2 / 3, 0.5),
])
def test_entity_f1_uses_strict_iob2_where_it_differs_from_the_default_mode(gold, predicted, strict, default):
    assert _entity_f1(gold, predicted) == pytest.approx(strict)
    assert f1_score(gold, predicted, mode="strict", scheme=IOB2) == pytest.approx(strict)
    assert f1_score(gold, predicted) == pytest.approx(default) != pytest.approx(strict)


@pytest.mark.parametrize("gold, predicted, strict, conlleval", [
    # I- without B-: no entity in strict IOB2, an entity with conlleval semantics
    ([["B-PER", "I-PER", "O", "B-LOC"]], [["I-PER", "I-PER", "O", "B-LOC"]], 2 / 3, 1.0),
    # B-PER I-LOC: strict ends PER at the type change and starts nothing; conlleval makes I-LOC a LOC entity
    ([["B-PER", "O", "B-LOC", "O"]], [["B-PER", "I-LOC", "O", "O"]], 2 / 3, 0.5),
    # a stray I-PER after O: a false positive for conlleval only (strict: P 1, R 1/2; conlleval: P 1/2, R 1/2)
    ([["B-PER", "I-PER", "O", "B-LOC"]], [["O", "I-PER", "O", "B-LOC"]], 2 / 3, 0.5),
    # and per sentence: an I- tag opening the second sentence starts an entity there, never continues the first
    ([["B-PER", "I-PER"], ["B-PER", "O"]], [["B-PER", "I-PER"], ["I-PER", "O"]], 2 / 3, 1.0),
])
def test_conlleval_entity_f1_is_seqevals_default_mode(gold, predicted, strict, conlleval):
    """``conlleval_f1`` (what the tables report for NER) is seqeval's default mode, where it differs from the
    strict IOB2 ``seqeval_f1`` the runs record (a metric that ignored the mode would give the strict figure)."""
    lengths = [len(s) for s in gold]
    flat_gold, flat_predicted = _ids(sum(gold, [])), _ids(sum(predicted, []))
    assert score_predictions("conlleval_f1", flat_predicted, flat_gold, TAGS, lengths) == pytest.approx(conlleval)
    assert score_predictions("seqeval_f1", flat_predicted, flat_gold, TAGS, lengths) == pytest.approx(strict)
    assert f1_score(gold, predicted) == pytest.approx(conlleval)
    with pytest.raises(ValueError, match="conlleval_f1 needs sentence lengths"):
        score_predictions("conlleval_f1", flat_predicted, flat_gold, TAGS)


def test_the_tables_report_conlleval_for_runs_that_recorded_strict_entity_f1():
    assert reported_metric("seqeval_f1") == "conlleval_f1"
    assert [reported_metric(m) for m in ("accuracy", "matthews", "word_accuracy")] == \
        ["accuracy", "matthews", "word_accuracy"]


def test_word_accuracy_counts_words_not_sentences():
    labels = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 0])
    predictions = np.array([0, 0, 3, 4, 5, 6, 7, 8, 9, 1])  # sentence 1 (2 words) all wrong, sentence 2 7 of 8
    # 7 of 10 words; the mean of the sentences' accuracies would be (0 + 7/8) / 2
    assert score_predictions("word_accuracy", predictions, labels, lengths=[2, 8]) == 0.7
    assert accuracy_score(labels, predictions) == 0.7


def test_score_logits_scores_the_argmax_end_to_end():
    logits = np.array([[2.0, -1.0, 0.5], [0.1, 0.3, 0.2], [-5.0, -4.0, -3.0], [1.0, 4.0, 0.0]])
    # argmax per row (0, 1, 2, 1); argmin (1, 0, 0, 2) scores 0 on these labels, softmax-then-threshold has no
    # meaning for 3 labels, and argmax over the rows has another shape
    assert score_logits("accuracy", logits, np.array([0, 1, 2, 1])) == 1.0
    assert score_logits("accuracy", logits, np.array([0, 1, 0, 2])) == 0.5
    assert score_logits("matthews", logits[:, :2], np.array([0, 1, 1, 1])) == pytest.approx(
        matthews_corrcoef([0, 1, 1, 1], [0, 1, 1, 1]))
    # tagging: one row per word, sentences cut by lengths
    tag_logits = np.eye(len(TAGS))[_ids(["B-PER", "I-PER", "I-PER", "O"])] * 3.0 - 1.0
    assert score_logits("seqeval_f1", tag_logits, _ids(["B-PER", "I-PER", "B-PER", "O"]), TAGS, [2, 2]) == \
        pytest.approx(2 / 3)


def test_misuse_is_refused():
    with pytest.raises(ConfigError, match="unknown metric 'f2'"):
        score_predictions("f2", np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="differ in shape"):
        score_predictions("accuracy", np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="lengths"):
        score_predictions("seqeval_f1", np.zeros(2, int), np.zeros(2, int), TAGS)


def _label_pairs(classes: int):
    return st.integers(1, 40).flatmap(lambda n: st.tuples(
        st.lists(st.integers(0, classes - 1), min_size=n, max_size=n),
        st.lists(st.integers(0, classes - 1), min_size=n, max_size=n)))


@BOUNDED
@given(pair=st.integers(2, 5).flatmap(_label_pairs))
def test_accuracy_and_matthews_equal_sklearns_on_random_labels(pair):
    labels, predictions = pair
    for metric in ("accuracy", "word_accuracy"):
        assert score_predictions(metric, np.array(predictions), np.array(labels)) == \
            accuracy_score(labels, predictions)
    assert score_predictions("matthews", np.array(predictions), np.array(labels)) == pytest.approx(
        matthews_corrcoef(labels, predictions), abs=1e-12)


_sentence = st.lists(st.sampled_from(TAGS), min_size=1, max_size=8)


@BOUNDED
@given(data=st.lists(st.tuples(_sentence, st.randoms(use_true_random=False)), min_size=1, max_size=6))
def test_conlleval_entity_f1_equals_seqevals_default_mode_on_random_tags(data):
    gold = [sentence for sentence, _ in data]
    predicted = [[random.choice(TAGS) if random.random() < 0.4 else tag for tag in sentence]
                 for sentence, random in data]
    expected = f1_score(gold, predicted, average="micro", zero_division=0)
    assert score_predictions("conlleval_f1", _ids(sum(predicted, [])), _ids(sum(gold, [])), TAGS,
                             [len(s) for s in gold]) == pytest.approx(expected, abs=1e-12)


@BOUNDED
@given(data=st.lists(st.tuples(_sentence, st.randoms(use_true_random=False)), min_size=1, max_size=6))
def test_entity_f1_equals_seqevals_strict_iob2_on_random_tags(data):
    gold = [sentence for sentence, _ in data]
    predicted = [[random.choice(TAGS) if random.random() < 0.4 else tag for tag in sentence]
                 for sentence, random in data]  # mostly right, some random tags: scores across (0, 1)
    expected = f1_score(gold, predicted, mode="strict", scheme=IOB2, average="micro", zero_division=0)
    assert _entity_f1(gold, predicted) == pytest.approx(expected, abs=1e-12)
    flat = np.eye(len(TAGS))[_ids(sum(predicted, []))] + 0.1  # and through the logits
    assert score_logits("seqeval_f1", flat, _ids(sum(gold, [])), TAGS, [len(s) for s in gold]) == \
        pytest.approx(expected, abs=1e-12)
