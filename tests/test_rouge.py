"""ROUGE adapter (equal to rouge_score's own figures), Lsum on sentence lines, the splitter, lead-3."""

from __future__ import annotations

import pytest
from rouge_score import rouge_scorer

from nlpcli.metrics import sentences
from nlpcli.metrics.rouge import ROUGE_TYPES, lead3_scores, lead_sentences, rouge_scores
from nlpcli.metrics.sentences import nupunkt_splitter

ENGLISH = (
    "Dr. Smith met Mr. Jones at 3 p.m. on Jan. 5 in Washington. They talked about the U.S. economy, "
    "e.g. inflation and jobs. Prof. Brown joined them later. Nobody expected the meeting to last this long."
)
ENGLISH_SENTENCES = [
    "Dr. Smith met Mr. Jones at 3 p.m. on Jan. 5 in Washington.",
    "They talked about the U.S. economy, e.g. inflation and jobs.",
    "Prof. Brown joined them later.",
    "Nobody expected the meeting to last this long.",
]
SPANISH = (
    "El Sr. García llegó a EE. UU. el lunes por la mañana. La Dra. Pérez lo recibió en el aeropuerto. "
    "Después cenaron con la Sra. López y la Srta. Ruiz, que vive en la Av. de Mayo. "
    "La cena costó aprox. 30 euros por persona."
)
SPANISH_SENTENCES = [
    "El Sr. García llegó a EE. UU. el lunes por la mañana.",
    "La Dra. Pérez lo recibió en el aeropuerto.",
    "Después cenaron con la Sra. López y la Srta. Ruiz, que vive en la Av. de Mayo.",
    "La cena costó aprox. 30 euros por persona.",
]


@pytest.fixture(scope="module")
def splitter():
    return nupunkt_splitter()


def test_the_offline_splitter_splits_english_and_spanish_with_abbreviations(splitter):
    assert splitter.split(ENGLISH) == ENGLISH_SENTENCES
    assert splitter.split(SPANISH) == SPANISH_SENTENCES
    assert splitter.newline_joined(SPANISH) == "\n".join(SPANISH_SENTENCES)


def test_nltk_punkt_is_used_only_when_its_data_is_installed(monkeypatch):
    monkeypatch.setattr(sentences, "punkt_data_installed", lambda: False)
    assert sentences.sentence_splitter.__wrapped__().name.startswith("nupunkt")
    monkeypatch.setattr(sentences, "punkt_data_installed", lambda: True)
    assert sentences.sentence_splitter.__wrapped__().name.startswith("nltk punkt")


def test_rouge_on_known_pairs_equals_rouge_scores_own_figures(splitter):
    predictions = ["the cat was found under the bed", "Running fast helps.", "completely different words"]
    references = ["the cat was under the bed", "He runs fast.", "the cat sat on the mat"]
    ours = rouge_scores(predictions, references, splitter)

    # First pair by hand: 6 of 7 unigrams and 4 of 6 bigrams match.
    first = rouge_scores(predictions[:1], references[:1], splitter)
    assert first["rouge1"] == pytest.approx(100 * 2 * (6 / 7) * 1 / (6 / 7 + 1))
    assert first["rouge2"] == pytest.approx(100 * 2 * (4 / 6) * (4 / 5) / (4 / 6 + 4 / 5))
    # Stemming: "Running"/"runs" -> "run".
    assert rouge_scores(predictions[1:2], references[1:2], splitter)["rouge1"] == pytest.approx(100 * 2 / 3)

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    per_pair = [scorer.score(r, p) for p, r in zip(predictions, references, strict=True)]
    for rouge_type in ROUGE_TYPES:
        expected = 100 * sum(s[rouge_type].fmeasure for s in per_pair) / len(per_pair)
        assert ours[rouge_type] == pytest.approx(expected)


def test_rouge_lsum_sees_one_sentence_per_line(splitter):
    prediction = "The storm closed the port. Ferries stayed in the harbour."
    reference = "Ferries stayed in the harbour. The storm closed the port."
    scores = rouge_scores([prediction], [reference], splitter)
    assert scores["rougeLsum"] == pytest.approx(100.0)  # each reference line is matched by a prediction line
    assert scores["rougeL"] == pytest.approx(50.0)  # one sequence: only one of the two sentences in order
    scorer = rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=True)
    as_one_line = scorer.score(reference, prediction)["rougeLsum"].fmeasure
    assert as_one_line == pytest.approx(0.5)  # without the newlines Lsum would equal L


def test_lead3_takes_the_first_three_sentences_and_scores_them(splitter):
    assert lead_sentences(ENGLISH, splitter) == "\n".join(ENGLISH_SENTENCES[:3])
    assert lead_sentences(SPANISH, splitter) == "\n".join(SPANISH_SENTENCES[:3])
    assert lead_sentences("Only one sentence here.", splitter) == "Only one sentence here."
    exact = lead3_scores([ENGLISH], [" ".join(ENGLISH_SENTENCES[:3])], splitter)
    assert set(exact) == {"lead3_rouge1", "lead3_rouge2", "lead3_rougeL", "lead3_rougeLsum"}
    assert all(value == pytest.approx(100.0) for value in exact.values())
    partial = lead3_scores([ENGLISH], [ENGLISH_SENTENCES[3]], splitter)
    direct = rouge_scores(["\n".join(ENGLISH_SENTENCES[:3])], [ENGLISH_SENTENCES[3]], splitter)
    assert partial == {f"lead3_{key}": value for key, value in direct.items()}
    assert 0 < partial["lead3_rouge1"] < 50


def test_summarize_scores_lead3_once_per_evaluation_set(monkeypatch):
    from nlpcli.tasks import summarize

    calls = []
    real = summarize.lead3_scores
    monkeypatch.setattr(summarize, "lead3_scores", lambda *args: calls.append(args) or real(*args))
    task = summarize.SummarizeTask()
    documents, references = [ENGLISH + " once"], [ENGLISH_SENTENCES[0]]
    first = task.score(documents, ["a guess"], references)
    second = task.score(documents, ["another guess"], references)  # the next evaluation of the same set
    assert len(calls) == 1
    assert {k: v for k, v in first.items() if k.startswith("lead3")} == {
        k: v for k, v in second.items() if k.startswith("lead3")}
    task.score(documents + ["Another document."], ["x", "y"], references + ["Another."])
    assert len(calls) == 2  # another set is scored anew
