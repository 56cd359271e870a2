"""Offline sentence splitting, for ROUGE-Lsum and the lead-3 baseline; never downloads anything.

nltk's punkt when its data is installed (what the course and transformers' `run_summarization.py`
use); otherwise `nupunkt`, a Punkt implementation that ships its English model inside the package.
Its model knows English abbreviations only, so Spanish ones are added ("Sra.", "Dra.", "EE. UU.", ...)
and Spanish titles get nupunkt's own rule for titles ("Mr. Smith"): no break before a capitalized name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

# Lower-case, without the final period; multi-part ones ("ee. uu.") are one entry per part.
SPANISH_ABBREVIATIONS = frozenset(
    "sr sra srta sres sras dr dra drs dras dña lic ing arq prof profa gral cnel sto sta "
    "ud uds vd vds av avda pág págs núm art cía etc aprox ej ee uu fig vol tel".split()
)
SPANISH_TITLES = frozenset("sr sra srta sres sras dr dra drs dras dña lic ing arq prof profa gral cnel".split())


@dataclass(frozen=True)
class SentenceSplitter:
    """A named text -> sentences function; the name goes into run.json."""

    name: str
    split: Callable[[str], list[str]]

    def newline_joined(self, text: str) -> str:
        """One sentence per line: what rouge_score's rougeLsum expects."""
        return "\n".join(s.strip() for s in self.split(text.strip()) if s.strip())


def punkt_data_installed() -> bool:
    import nltk

    try:
        nltk.data.find("tokenizers/punkt_tab/english/")
    except LookupError:
        return False
    return True


def nltk_splitter() -> SentenceSplitter:
    import nltk

    return SentenceSplitter("nltk punkt (english)", nltk.sent_tokenize)


def nupunkt_splitter() -> SentenceSplitter:
    from nupunkt import PunktSentenceTokenizer
    from nupunkt.models import get_default_model_path

    class _EnglishSpanishPunkt(PunktSentenceTokenizer):
        # private: nupunkt offers no public way to add prenominal titles (never sentence-final before a
        # capitalised name; add_abbreviations only makes them abbreviations). Use its public API once it has one;
        # tests/test_rouge.py fails if this attribute stops working.
        _TITLE_ABBREVS = PunktSentenceTokenizer._TITLE_ABBREVS | SPANISH_TITLES

    tokenizer = _EnglishSpanishPunkt.load(get_default_model_path())
    tokenizer.add_abbreviations(sorted(SPANISH_ABBREVIATIONS))
    return SentenceSplitter("nupunkt (+ Spanish abbreviations)", lambda text: list(tokenizer.tokenize(text)))


@lru_cache(maxsize=1)
def sentence_splitter() -> SentenceSplitter:
    """nltk punkt if its data is installed, else nupunkt."""
    return nltk_splitter() if punkt_data_installed() else nupunkt_splitter()
