"""Translation (the course's chapter 7, section 4): sentence pairs, BLEU and chrF with sacrebleu.

Pairs come from a `translation` column of `{language: text}` dicts (hub data sets, json/jsonl), picked
with --source-lang / --target-lang, or from two flat columns (--source-column / --target-column).
Multilingual models (mBART, M2M100, NLLB) take --source-lang-code / --target-lang-code: the tokenizer's
language modes, and the target code as the forced first generated token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nlpcli.config import option
from nlpcli.errors import UserError
from nlpcli.metrics.translation import bleu_chrf
from nlpcli.sources.data import Sample, describe
from nlpcli.tasks.base import PredictRequest
from nlpcli.tasks.seq2seq import Seq2SeqConfig, Seq2SeqTask
from nlpcli.tasks.seq2seq_pairs import PairColumns


@dataclass
class TranslateConfig(Seq2SeqConfig):
    source_lang: str | None = option("en", "Source language key of the translation column.")
    target_lang: str | None = option("fr", "Target language key of the translation column.")
    translation_column: str = option("translation", "Column of {language: text} dicts.")
    source_column: str | None = option(None, "Flat column holding the source text (instead of a translation column).")
    target_column: str | None = option(None, "Flat column holding the target text.")
    source_lang_code: str | None = option(None, "Tokenizer source language code (mBART en_XX, NLLB eng_Latn, ...).")
    target_lang_code: str | None = option(None, "Tokenizer target language code, also forced as the first token.")


class TranslateTask(Seq2SeqTask):
    name = "translate"
    hub_task = "translation"
    help = "Translation: fine-tune a seq2seq model on sentence pairs, BLEU/chrF from generated text before/after."
    config_class = TranslateConfig
    output_name = "translation"
    best_scores = {"eval_bleu": 100.0, "eval_chrf": 100.0}  # sacrebleu: 0 to 100
    unused_options = ("text_column", "label_column")  # --translation-column, or --source/--target-column
    prefix_example = "translate English to French: "
    sample = Sample(
        files={"train": "wmt16_en_ro_sample.jsonl", "validation": "wmt16_en_ro_sample.jsonl"},
        description="10 English-Romanian pairs of European Parliament headings (wmt16), for train and validation",
    )
    demo_request = PredictRequest(texts=["Approval of Minutes of previous sitting: see Minutes"])

    def side_labels(self, cfg: TranslateConfig) -> tuple[str, str]:
        return (f"source ({cfg.source_column or cfg.source_lang})", f"target ({cfg.target_column or cfg.target_lang})")

    def pair_columns(self, data: Any, cfg: TranslateConfig, split: str) -> PairColumns:
        columns = data.column_names
        if cfg.source_column or cfg.target_column:
            for flag, column in (("--source-column", cfg.source_column), ("--target-column", cfg.target_column)):
                if not column:
                    raise UserError(f"{flag} is needed too: flat columns come in pairs.")
                if column not in columns:
                    raise UserError(f"{describe(cfg, split)}: no column '{column}' ({flag}). Columns: "
                                    f"{', '.join(columns)}.")
            return PairColumns(cfg.source_column, cfg.target_column)
        column = cfg.translation_column
        if column not in columns:
            raise UserError(
                f"{describe(cfg, split)}: no column '{column}'. Columns: {', '.join(columns)}.",
                hint="Name a column of {language: text} dicts with --translation-column, or two text columns "
                     "with --source-column and --target-column.",
            )
        if not cfg.source_lang or not cfg.target_lang:
            raise UserError(f"--source-lang and --target-lang pick the languages of the '{column}' column.")
        first = data.select_columns([column])[:1000][column]  # the languages of the first 1000 records
        languages = sorted({key for pair in first if isinstance(pair, dict) for key in pair})
        for flag, language in (("--source-lang", cfg.source_lang), ("--target-lang", cfg.target_lang)):
            if language not in languages:
                raise UserError(f"{describe(cfg, split)}: {flag} {language} is not in the '{column}' column "
                                f"(languages: {', '.join(languages) or 'none'}).")
        return PairColumns(column, column, source_key=cfg.source_lang, target_key=cfg.target_lang)

    def configure_tokenizer(self, tokenizer: Any, cfg: TranslateConfig) -> None:
        codes = (("src_lang", "--source-lang-code", cfg.source_lang_code),
                 ("tgt_lang", "--target-lang-code", cfg.target_lang_code))
        for attribute, flag, code in codes:
            if not code:
                continue
            if not hasattr(tokenizer, attribute):
                raise UserError(f"{cfg.model}: its tokenizer has no language modes; leave out {flag}.")
            language_token_id(tokenizer, code)
            setattr(tokenizer, attribute, code)

    def generation_settings(self, cfg: TranslateConfig, tokenizer: Any) -> dict[str, Any]:
        settings = super().generation_settings(cfg, tokenizer)
        if cfg.target_lang_code:
            settings["forced_bos_token_id"] = language_token_id(tokenizer, cfg.target_lang_code)
        return settings

    def score(self, sources: list[str], predictions: list[str], references: list[str]) -> dict[str, float]:
        return bleu_chrf(predictions, references)


def language_token_id(tokenizer: Any, code: str) -> int:
    """The token id of a language code (M2M100's `get_lang_id`, else the code as a token), or a UserError."""
    if hasattr(tokenizer, "get_lang_id"):
        try:
            return int(tokenizer.get_lang_id(code))
        except (KeyError, ValueError):
            pass
    token_id = tokenizer.convert_tokens_to_ids(code)
    if token_id is None or token_id == tokenizer.unk_token_id:
        raise UserError(f"'{code}' is not a language code of this tokenizer.",
                        hint="mBART-50 uses codes like fr_XX, NLLB fra_Latn, M2M100 fr.")
    return int(token_id)
