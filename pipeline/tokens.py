"""One pass over a text that every matcher of the enrich stage shares.

:class:`TokenStream` canonicalizes a text once and keeps what the rules
matcher (:mod:`pipeline.matching`) and the gazetteers
(:mod:`pipeline.gazetteer`) both scan: the canonical tokens (ة folded) and the
*joined* stream, the tokens separated by ``" "`` where only whitespace (or one
hyphen) stands between two words and by ``" | "`` where punctuation does, so
that a phrase cannot cross a comma. Aho-Corasick automata run over ``joined``
and turn a hit's end offset into token indices with :meth:`TokenStream.index_at`;
the tokens' spans in the original text are computed only when a hit needs them.

Canonicalizing token by token costs a Python call per word. Here the whole text
is folded with one :func:`pipeline.arabic.normalize` call and split with C-level
regular expressions. That gives the same tokens as :func:`pipeline.arabic.tokenize`
whenever the text is already in NFKC: then folding only deletes characters that
sit *inside* tokens (marks, tatweel, zero-width characters) and maps letters to
letters, so token boundaries cannot move; a token can only vanish (a lone
haraka), and that shows as a different count. In any other case (presentation
forms, a ligature that NFKC turns into several words) the stream is built from
:func:`~pipeline.arabic.tokenize` itself, token by token.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from pipeline.arabic import _TOKEN_RE, IGNORABLE_CHARS, TATWEEL, normalize, tokenize

__all__ = ["TokenStream"]

_HYPHENS: Final = r"\-\u2010\u2011"
# The joined stream in three C-level passes over the folded text, each pattern
# starting with a character class so that sre skips ahead between matches:
# punctuation (with the rest of its gap) becomes a bar, then two hyphens in
# one gap do, then whitespace runs and a lone hyphen become one space.
_PUNCT_GAP: Final = re.compile(rf"(?:[^\w\s{_HYPHENS}]|_)[\W_]*")
_DOUBLE_HYPHEN: Final = re.compile(rf"[{_HYPHENS}]\s*[{_HYPHENS}][\s{_HYPHENS}]*")
_SPACE_GAP: Final = re.compile(rf"[\s{_HYPHENS}]+")
_BAR_RUN: Final = re.compile(r"\|(?:\s*\|)+")
_PHRASE_GAP: Final = re.compile(
    rf"[\s{re.escape(IGNORABLE_CHARS)}]*(?:[{_HYPHENS}][\s{re.escape(IGNORABLE_CHARS)}]*)?"
)
_GLUE_ONLY: Final = IGNORABLE_CHARS + TATWEEL


class TokenStream:
    """The canonical tokens of one text field and the joined string the automata scan."""

    def __init__(self, text: str, field: str = "text") -> None:
        self.text = text
        self.field = field
        #: ``normalize(text)``: the canonical form, ة kept (what the index stores).
        self.normalized = normalize(text)
        #: The canonical tokens, ة folded (what rules and gazetteers compare).
        self.tokens: list[str]
        #: ``" tok tok | tok "``: the tokens joined, ``|`` where punctuation separates them.
        self.joined: str
        self._spans: list[tuple[int, int]] | None = None
        self._last = (0, -1)  # (offset, token index) of the last index_at answer
        # lower() turns İ into i + a combining dot, which would split the token.
        if unicodedata.is_normalized("NFKC", text) and "\u0307" not in self.normalized:
            folded = self.normalized.replace("\u0629", "\u0647")
            gaps = _BAR_RUN.sub("|", _DOUBLE_HYPHEN.sub(" | ", _PUNCT_GAP.sub(" | ", folded)))
            body = _SPACE_GAP.sub(" ", gaps).strip(" |")
            self.joined = f" {body} " if body else " "
            # Only letters and digits are left between the gaps, so the tokens
            # (the ``[^\W_]+`` runs of ``folded``) are split off in C.
            self.tokens = body.replace(" | ", " ").split()
        else:
            toks = tokenize(text, fold_teh_marbuta=True)
            self.tokens = [t.norm.replace(" ", "_").replace("|", "_") for t in toks]
            parts = [" "]
            for i, tok in enumerate(toks):
                if i:
                    soft = _PHRASE_GAP.fullmatch(text, toks[i - 1].end, tok.start)
                    parts.append(" " if soft else " | ")
                parts.append(self.tokens[i])
            parts.append(" ")
            self.joined = "".join(parts)
            self._spans = [(t.start, t.end) for t in toks]

    @property
    def spans(self) -> list[tuple[int, int]]:
        """Each token's ``(start, end)`` in :attr:`text`, edges not trimmed (see :meth:`span`)."""
        if self._spans is None:
            out = [m.span() for m in _TOKEN_RE.finditer(self.text)]
            if len(out) != len(self.tokens):  # a run of lone marks: tokenize drops it too
                out = [(t.start, t.end) for t in tokenize(self.text, fold_teh_marbuta=True)]
            self._spans = out
        return self._spans

    def index_at(self, offset: int) -> int:
        """The index of the token that begins at ``offset`` in :attr:`joined`.

        Every gap before it is one space, or two around a ``|``; tokens hold neither.
        """
        joined = self.joined
        # Automata report hits in order: count from the last answer, not from the start.
        last_offset, last_index = self._last
        if offset < last_offset:
            last_offset, last_index = 0, -1
        index = (
            last_index
            + joined.count(" ", last_offset, offset)
            - joined.count("|", last_offset, offset)
        )
        self._last = (offset, index)
        return index

    def soft_gap_before(self, offset: int) -> bool:
        """Whether only whitespace or one hyphen precedes the token at ``offset``."""
        return offset > 1 and self.joined[offset - 3 : offset] != " | "

    def span(self, first: int, last: int) -> tuple[int, int]:
        """The original text's span from token ``first`` to token ``last`` (inclusive).

        Zero-width characters and tatweel at its edges are left out, as
        :func:`~pipeline.arabic.tokenize` leaves them out of a token.
        """
        spans, text = self.spans, self.text
        start, end = spans[first][0], spans[last][1]
        while start < end and text[start] in _GLUE_ONLY:
            start += 1
        while end > start and text[end - 1] in _GLUE_ONLY:
            end -= 1
        return start, end
