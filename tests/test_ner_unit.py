"""NER pieces on known inputs: label alignment, label list, seqeval metric."""

from __future__ import annotations

import re

import datasets
import numpy as np
import pytest

from nlpcli.metrics.seqeval_scores import seqeval_scores
from nlpcli.sources.presets import train_wordpiece_tokenizer
from nlpcli.tasks.ner import (
    IGNORE,
    NerConfig,
    NerTask,
    align_labels_with_tokens,
    continuation_ids,
    prediction_rows,
    score_rows,
)

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def test_alignment_first_subtoken_keeps_label_and_b_becomes_i():
    # words: [Sylvain, works, in, Brooklyn] -> "Syl ##vain" and "Brook ##lyn" are split in two
    word_labels = [1, 0, 0, 3]
    word_ids = [None, 0, 0, 1, 2, 3, 3, None]
    continuation = continuation_ids(LABELS)
    assert align_labels_with_tokens(word_labels, word_ids, continuation, label_all_tokens=True) == [
        IGNORE, 1, 2, 0, 0, 3, 4, IGNORE,
    ]
    assert align_labels_with_tokens(word_labels, word_ids, continuation, label_all_tokens=False) == [
        IGNORE, 1, IGNORE, 0, 0, 3, IGNORE, IGNORE,
    ]


def test_continuation_keeps_label_without_i_twin():
    assert continuation_ids(["O", "B-MISC", "B-PER", "I-PER"]) == [0, 1, 3, 3]


def test_alignment_with_a_real_tokenizer():
    tokenizer = train_wordpiece_tokenizer(["Sylvain works in Brooklyn"] * 3 + ["a b c d e f g h"], 40, 64)
    encoded = tokenizer(["Sylvain", "works"], is_split_into_words=True)
    word_ids = encoded.word_ids()
    assert word_ids[0] is None and word_ids[-1] is None
    assert word_ids.count(0) > 1, "Sylvain must be split into sub-tokens for this test to mean anything"
    aligned = align_labels_with_tokens([1, 0], word_ids, continuation_ids(LABELS), True)
    first_of_sylvain = word_ids.index(0)
    assert aligned[first_of_sylvain] == 1
    assert all(aligned[i] == 2 for i, w in enumerate(word_ids) if w == 0 and i != first_of_sylvain)
    assert all(aligned[i] == 0 for i, w in enumerate(word_ids) if w == 1)


def test_seqeval_scores_on_known_predictions():
    references = [["B-PER", "I-PER", "O", "B-LOC"], ["B-LOC", "O"]]
    predictions = [["B-PER", "I-PER", "O", "O"], ["B-LOC", "B-PER"]]
    scores = seqeval_scores(references, predictions)
    # 3 gold entities, 3 predicted, 2 correct
    assert scores["overall_precision"] == pytest.approx(2 / 3)
    assert scores["overall_recall"] == pytest.approx(2 / 3)
    assert scores["overall_f1"] == pytest.approx(2 / 3)
    assert scores["overall_accuracy"] == pytest.approx(4 / 6)
    assert scores["LOC_recall"] == pytest.approx(0.5) and scores["LOC_number"] == 2
    assert scores["PER_precision"] == pytest.approx(0.5) and scores["PER_number"] == 1


def _raw(tags_feature=None, tags=None):
    features = None
    if tags_feature is not None:
        features = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                      "ner_tags": datasets.Sequence(tags_feature)})
    data = {"tokens": [["Bill", "met", "Paris"]], "ner_tags": tags or [[1, 0, 3]]}
    return datasets.DatasetDict({"train": datasets.Dataset.from_dict(data, features=features),
                                 "validation": datasets.Dataset.from_dict(data, features=features)})


def test_label_names_come_from_classlabel_features():
    setup = NerTask().setup(_raw(datasets.ClassLabel(names=LABELS)), NerConfig(dataset="x"), None)
    assert list(setup.labels) == LABELS and setup.model_kwargs["id2label"][3] == "B-LOC"


def test_string_labels_sorted_o_first():
    setup = NerTask().setup(_raw(tags=[["B-PER", "O", "B-LOC"]]), NerConfig(dataset="x"), None)
    assert list(setup.labels) == ["O", "B-LOC", "B-PER"]


def test_class_ids_without_names_need_labels_option():
    from nlpcli.errors import UserError

    with pytest.raises(UserError, match="--labels"):
        NerTask().setup(_raw(), NerConfig(dataset="x"), None)
    setup = NerTask().setup(_raw(), NerConfig(dataset="x", labels=LABELS), None)
    assert list(setup.labels) == LABELS


def test_evaluation_is_word_level_from_first_sub_tokens():
    # [CLS] Syl ##vain works in Brook ##lyn [SEP]; the second sentence lost its last word to truncation
    word_ids = [[-1, 0, 0, 1, 2, 3, 3, -1], [-1, 0, 1, -1]]
    features = datasets.Dataset.from_dict({"word_ids": word_ids})
    raw = {"tokens": [["Sylvain", "works", "in", "Brooklyn"], "Bill met Paris"],  # a list, or a string (CSV)
           "ner_tags": [["B-PER", "O", "O", "B-LOC"], [1, 0, 3]]}  # label names, or class ids
    predicted = [[0, 1, 0, 0, 0, 3, 0, 0], [0, 1, 4, 0]]  # ##vain and ##lyn are ignored: only first sub-tokens
    logits = np.full((2, 9, len(LABELS)), -1.0)  # one extra padded position, as gathered logits have
    for row, labels in enumerate(predicted):
        for position, label in enumerate(labels):
            logits[row, position, label] = 1.0
    rows = prediction_rows(logits, features, raw, NerConfig(), tuple(LABELS))
    assert rows == [
        {"tokens": ["Sylvain", "works", "in", "Brooklyn"], "prediction": ["B-PER", "O", "O", "B-LOC"],
         "reference": ["B-PER", "O", "O", "B-LOC"]},
        {"tokens": ["Bill", "met"], "prediction": ["B-PER", "I-LOC"], "reference": ["B-PER", "O"]},
    ]
    scores = score_rows(rows)
    assert scores["overall_precision"] == pytest.approx(3 / 4) and scores["overall_recall"] == 1.0


def test_label_list_is_the_union_of_train_and_validation(capsys):
    train = {"tokens": [["Bill", "met", "Paris"]], "ner_tags": [["B-PER", "O", "B-LOC"]]}
    validation = {"tokens": [["Nobel", "Prize", "in", "Oslo", "and", "Turing", "Award"]],
                  "ner_tags": [["B-OTH", "I-OTH", "O", "B-LOC", "O", "B-OTH", "I-OTH"]]}
    raw = datasets.DatasetDict({"train": datasets.Dataset.from_dict(train),
                                "validation": datasets.Dataset.from_dict(validation)})
    setup = NerTask().setup(raw, NerConfig(dataset="x"), None)
    assert list(setup.labels) == ["O", "B-LOC", "B-OTH", "I-OTH", "B-PER"]
    warning = capsys.readouterr().err
    assert "B-OTH (2), I-OTH (2)" in warning and "B-LOC" not in warning and warning.count("warning") == 1
    again = NerTask().setup(datasets.DatasetDict({"train": raw["validation"], "validation": raw["train"]}),
                            NerConfig(dataset="x"), None)
    assert again.labels == setup.labels  # the same order whichever split a label comes from


def test_a_record_without_words_is_named_in_a_warning(capsys):
    data = {"tokens": [["Bill", "met", "Paris"], [], ["Oslo"]], "ner_tags": [["B-PER", "O", "B-LOC"], [], ["B-LOC"]]}
    raw = datasets.DatasetDict({"train": datasets.Dataset.from_dict(data)})
    setup = NerTask().setup(raw, NerConfig(train_file="train.jsonl"), None)
    assert list(setup.labels) == ["O", "B-LOC", "B-PER"]
    warning = " ".join(capsys.readouterr().err.split())
    assert "train.jsonl, record 2: no words (1 such record(s))" in warning


def test_words_and_labels_of_the_wrong_type_are_refused():
    from nlpcli.errors import UserError

    for tokens, tags, message in (
        ([["Peter", None]], [["B-PER", "O"]], "'tokens' must hold strings; word 2 is null"),
        ([None], [["O"]], "'tokens' must be a list of words (or a space-separated string), got null"),
        ([["Peter"]], [[1.5]], "'ner_tags' must hold label names or class ids; label 1 is 1.5 (float)"),
    ):
        raw = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"tokens": tokens, "ner_tags": tags})})
        with pytest.raises(UserError, match=re.escape(f"record 1: {message}")):
            NerTask().setup(raw, NerConfig(train_file="t.jsonl"), None)


def test_entity_scores_are_seqevals_float_for_float_on_random_tag_sequences():
    """nlpcli scores entities itself (seqeval imports scikit-learn: seconds per process); it must give exactly
    what seqeval's classification_report and accuracy_score give, odd tags and schemes included."""
    import random
    import warnings

    from seqeval.metrics import accuracy_score, classification_report

    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "E-LOC", "S-ORG", "I-ORG", ".", "B-MISC", "PER", "I-"]
    rng = random.Random(7)
    compared = 0
    for _ in range(400):
        references = [[rng.choice(tags) for _ in range(rng.randint(1, 8))] for _ in range(rng.randint(1, 4))]
        predictions = [[rng.choice(tags) for _ in sentence] for sentence in references]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # seqeval warns about tags such as '.' or 'PER'
            report = classification_report(references, predictions, output_dict=True, zero_division=0)
            accuracy = accuracy_score(references, predictions)
        micro = report.pop("micro avg")
        expected = {"overall_precision": micro["precision"], "overall_recall": micro["recall"],
                    "overall_f1": micro["f1-score"], "overall_accuracy": accuracy}
        for kind, values in report.items():
            if not kind.endswith(" avg"):
                expected |= {f"{kind}_precision": values["precision"], f"{kind}_recall": values["recall"],
                             f"{kind}_f1": values["f1-score"], f"{kind}_number": values["support"]}
        assert seqeval_scores(references, predictions) == expected, (references, predictions)
        compared += 1
    assert compared == 400
