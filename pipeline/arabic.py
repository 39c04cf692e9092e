"""The one Arabic canonical form of rasd, and the tokenizer that goes with it.

Dedupe keys, alert matching and (mirrored as far as Elasticsearch allows, see
:func:`es_mapping_rules`) the index analyzer all call :func:`normalize`, so a
word that differs only by tashkeel, tatweel, presentation forms, zero-width
characters, hamza-on-alef spelling, Persian-keyboard yeh/kaf or digit script has
one spelling everywhere. The steps, in order: NFKC (folds presentation forms and
composes a decomposed alef + U+0653/U+0654/U+0655 into آ/أ/إ, waw + U+0654 into
ؤ, yeh + U+0654 into ئ); delete every combining mark (Unicode category Mn:
harakat, shadda, sukun, superscript alef U+0670, stray hamza U+0654/U+0655,
Quranic marks), tatweel and zero-width / bidi control characters; fold أ إ آ ٱ
to ا, ى ی ے to ي, ک to ك, ۀ ہ ھ to ه, ۃ to ة; map Arabic-Indic (٠-٩) and
Extended Arabic-Indic (۰-۹) digits to ASCII; lowercase. ؤ and ئ are kept as
they are: Lucene's ``arabic_normalization`` keeps them too, and folding them to
و/ي would merge distinct words in both the index and the alerts. ة→ه is lossy
(it merges e.g. قيصرة with قيصره), so it is an option, ``fold_teh_marbuta``,
and each use picks: **alert matching folds both sides** (rule terms and article
tokens, so a rule catches either spelling, which is how many writers type it),
**dedupe keys fold** (the same wire copy retyped with ه must hash the same), and
the stored ``normalized_title`` / ``normalized_body`` do **not** fold, so they
stay readable; the index analyzer folds ة itself (``arabic_normalization``).
:func:`tokenize` splits on anything that is not a letter, digit or mark (so
Arabic ، ؛ ؟ « » and Latin punctuation are boundaries) and keeps each token's
character span in the *original* text, which is what alerts report.

:func:`clitic_base` is rasd's proclitic analysis of one canonical token, the
same algorithm as the Elasticsearch filter ``rasd_arabic_clitics`` (plugin
``rasd-fold``): the index holds each word and its base at one position, a query
word becomes both, and the rules matcher accepts a token whose base meets the
term's. The parameters (:data:`CLITIC_MIN_BASE`, :data:`CLITIC_PROTECTED`) are
passed to Elasticsearch by the index template, so both sides share them.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import Final

__all__ = [
    "CLITIC_ARTICLE_NAMES",
    "CLITIC_EQUIVALENTS",
    "CLITIC_MIN_BASE",
    "CLITIC_PROTECTED",
    "IGNORABLE_CHARS",
    "PROCLITICS",
    "Token",
    "clitic_base",
    "clitic_variants",
    "es_clitic_pattern",
    "es_mapping_rules",
    "normalize",
    "tokenize",
]

TATWEEL: Final = "\u0640"

#: Zero-width and bidi formatting characters: deleted, and never a token boundary,
#: because editors and CMSs insert them inside words (ZWNJ on Persian keyboards,
#: RLM/LRM around Latin names, BOMs from copy-paste).
IGNORABLE_CHARS: Final = (
    "\u00ad"  # soft hyphen
    "\u061c"  # Arabic letter mark
    "\u200b\u200c\u200d\u200e\u200f"  # ZWSP, ZWNJ, ZWJ, LRM, RLM
    "\u202a\u202b\u202c\u202d\u202e"  # bidi embeddings and overrides
    "\u2060"  # word joiner
    "\u2066\u2067\u2068\u2069"  # bidi isolates
    "\ufeff"  # BOM / zero-width no-break space
)

#: Letter folds applied after NFKC. Kept as data so that the ES analyzer's
#: mapping char filter can be generated from the same table.
_LETTER_FOLDS: Final[dict[str, str]] = {
    "\u0623": "\u0627",  # أ → ا
    "\u0625": "\u0627",  # إ → ا
    "\u0622": "\u0627",  # آ → ا
    "\u0671": "\u0627",  # ٱ (alef wasla) → ا
    "\u0672": "\u0627",  # ٲ (alef with wavy hamza above) → ا
    "\u0673": "\u0627",  # ٳ (alef with wavy hamza below) → ا
    "\u0649": "\u064a",  # ى (alef maksura) → ي
    "\u06cc": "\u064a",  # ی (Farsi yeh) → ي
    "\u06d2": "\u064a",  # ے (yeh barree, Urdu keyboards) → ي
    "\u06a9": "\u0643",  # ک (keheh) → ك
    "\u06c0": "\u0647",  # ۀ (heh with yeh above) → ه
    "\u06c1": "\u0647",  # ہ (heh goal) → ه
    "\u06be": "\u0647",  # ھ (heh doachashmee) → ه
    "\u06c3": "\u0629",  # ۃ (teh marbuta goal) → ة
}

_DIGIT_FOLDS: Final[dict[str, str]] = {
    **{chr(0x0660 + i): str(i) for i in range(10)},  # ٠-٩
    **{chr(0x06F0 + i): str(i) for i in range(10)},  # ۰-۹
}


def _combining_marks() -> list[int]:
    # Planes 0 and 1 hold every Mn mark that occurs in text; plane 14 holds the
    # variation selectors supplement. Scanning only these keeps import fast.
    ranges = (range(0x0300, 0x20000), range(0xE0100, 0xE01F0))
    return [cp for r in ranges for cp in r if unicodedata.category(chr(cp)) == "Mn"]


_MARKS: Final = _combining_marks()

_BASE_TABLE: Final[dict[int, str | None]] = {
    **{cp: None for cp in _MARKS},
    **{ord(c): None for c in IGNORABLE_CHARS + TATWEEL},
    **{ord(k): v for k, v in _LETTER_FOLDS.items()},
    **{ord(k): v for k, v in _DIGIT_FOLDS.items()},
}
_TEH_TABLE: Final[dict[int, str | None]] = {
    **_BASE_TABLE,
    0x0629: "\u0647",  # ة → ه
    0x06C3: "\u0647",  # ۃ → ه
}


def _char_class(code_points: list[int]) -> str:
    """A regex character class body covering ``code_points`` as compact ranges."""
    parts: list[str] = []
    cps = sorted(set(code_points))
    i = 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        lo, hi = cps[i], cps[j]
        parts.append(
            re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}"
        )
        i = j + 1
    return "".join(parts)


#: Below this length translate() is the faster way.
_SHORT: Final = 64
# Only the Basic Multilingual Plane's marks: a class with astral characters
# is a list that sre scans per character; text beyond the BMP takes translate().
_DELETED_RE: Final = re.compile(
    "[" + _char_class([k for k, v in _BASE_TABLE.items() if v is None and k < 0x10000]) + "]+"
)
_ASTRAL_RE: Final = re.compile("[\U00010000-\U0010ffff]")
# The single-character folds of _BASE_TABLE, then ة → ه last (ۃ → ة comes before it).
_FOLDS_IN_ORDER: Final = (
    *((chr(k), v) for k, v in _BASE_TABLE.items() if v is not None),
    ("\u0629", "\u0647"),
)


def normalize(text: str, *, fold_teh_marbuta: bool = False) -> str:
    """Return the canonical form of ``text`` (see the module docstring).

    Whitespace and punctuation are kept; only letters, digits and marks change.
    The result may be shorter than the input, so spans must come from
    :func:`tokenize`, never from offsets into the normalized string.
    """
    if not text:
        return ""
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    if len(text) < _SHORT or _ASTRAL_RE.search(text):
        return text.translate(_TEH_TABLE if fold_teh_marbuta else _BASE_TABLE).lower()
    # A long text (an article body) the same way, faster: str.translate with a
    # dict looks every character up in Python's dict; one regex pass deletes
    # the marks and a str.replace per fold that occurs changes the rest.
    text = _DELETED_RE.sub("", text)
    for old, new in _FOLDS_IN_ORDER if fold_teh_marbuta else _FOLDS_IN_ORDER[:-1]:
        if old in text:
            text = text.replace(old, new)
    return text.lower()


# A token is a run of letters/digits (``[^\W_]``), combining marks, tatweel and
# ignorable characters. Marks are not ``\w`` in Python's ``re``, so without them
# every haraka would split a word. Underscore counts as punctuation.
# The glue is split at the BMP's end: a class holding astral characters is a
# list that sre scans for every character it tests (every word's end), and
# the lookahead sends only astral characters to it.
_GLUE: Final = _char_class(
    [cp for cp in _MARKS if cp < 0x10000] + [ord(c) for c in IGNORABLE_CHARS + TATWEEL]
)
_ASTRAL_GLUE: Final = _char_class([cp for cp in _MARKS if cp >= 0x10000])
# Runs of each class are taken possessively: one step per run, not per character.
_TOKEN_RE: Final = re.compile(
    rf"(?:[^\W_]++|[{_GLUE}]++|(?=[\U00010000-\U0010ffff])[{_ASTRAL_GLUE}])++"
)
_EDGE_IGNORABLES: Final = IGNORABLE_CHARS + TATWEEL


@dataclass(frozen=True, slots=True)
class Token:
    """One word: its canonical form and where it sits in the original text."""

    norm: str
    """Canonical form (:func:`normalize` of the surface)."""
    surface: str
    """The text exactly as written, ``original[start:end]``."""
    start: int
    end: int


def tokenize(text: str, *, fold_teh_marbuta: bool = False) -> list[Token]:
    """Split ``text`` into word tokens with spans into ``text`` itself.

    Boundaries are whitespace and every punctuation or symbol character,
    Arabic (، ؛ ؟ « » ٪) or Latin (quotes, brackets, hyphens, apostrophes).
    Zero-width characters and tatweel inside a word do not split it; at the
    edges of a word they are left out of its span. Runs that normalize to
    nothing (a stray haraka) are dropped.
    """
    tokens: list[Token] = []
    for m in _TOKEN_RE.finditer(text):
        start, end = m.span()
        # Trim ignorable edges so that the reported surface is the visible word.
        while start < end and text[start] in _EDGE_IGNORABLES:
            start += 1
        while end > start and text[end - 1] in _EDGE_IGNORABLES:
            end -= 1
        surface = text[start:end]
        norm = normalize(surface, fold_teh_marbuta=fold_teh_marbuta)
        if norm:
            tokens.append(Token(norm, surface, start, end))
    return tokens


def es_mapping_rules() -> list[str]:
    """Rules for an Elasticsearch ``mapping`` char filter mirroring the letter folds.

    The index analyzer runs ``icu_normalizer``/NFKC-like steps and
    ``arabic_normalization`` where available; these lines add the folds that
    Lucene lacks (ٱ, ی, ک, ے, ہ, ھ, Arabic-Indic digits). Escapes follow the
    mapping filter's ``\\uXXXX`` syntax.
    """

    def esc(c: str) -> str:
        return c if c.isascii() else f"\\u{ord(c):04X}"

    return [f"{esc(k)} => {esc(v)}" for k, v in {**_LETTER_FOLDS, **_DIGIT_FOLDS}.items()]


def body_words(body: str) -> list[str]:
    """The canonical tokens (ة folded) that the dedupe keys are made of."""
    return [t.norm for t in tokenize(body, fold_teh_marbuta=True)]


def hash_words(words: list[str]) -> str:
    return hashlib.sha256(" ".join(words).encode("utf-8")).hexdigest()


def body_hash(body: str) -> str:
    """SHA-256 of the body's canonical tokens (ة folded), joined by single spaces.

    Joining tokens makes the key blind to whitespace, punctuation and markup
    leftovers that differ between two copies of the same wire story.
    """
    return hash_words(body_words(body))


_ARTICLE: Final = "ال"
_CONJUNCTIONS: Final = ("", "و", "ف")
_PREPOSITIONS: Final = ("", "ب", "ك", "ل")


def _proclitic_chains() -> tuple[str, ...]:
    chains: list[str] = []
    for conj in _CONJUNCTIONS:
        for prep in _PREPOSITIONS:
            for art in ("", _ARTICLE):
                # ل + ال is written لل (للقيصر), never لال.
                chain = conj + ("لل" if prep == "ل" and art else prep + art)
                if chain not in chains:
                    chains.append(chain)
    return tuple(chains)


#: Every allowed proclitic chain before a word ("" included): an optional
#: conjunction و ف, an optional preposition ب ك ل, an optional article ال.
PROCLITICS: Final = _proclitic_chains()
_CHAINS_LONGEST_FIRST: Final = tuple(sorted((c for c in PROCLITICS if c), key=len, reverse=True))

#: The shortest base a proclitic may leave. 2 would strip بلد to لد, ولد to لد
#: and بعض to عض; 4 would keep بحلب, لقيصر's three-letter cousins such as
#: وحلب and بغزه whole. Measured on the golden cases and the search set.
CLITIC_MIN_BASE: Final = 3

#: Words whose first letters look like proclitics but belong to the word, and
#: whose remainder is another word (or would make a short query match them):
#: وزير is not و + زير, كتاب is not ك + تاب. Canonical forms (ة→ه, أ→ا, ى→ي).
#: A token that ends with one of them is never cut inside it (ولبنان → لبنان,
#: not بنان). Each entry costs nothing but a look-up; missing ones cost precision.
_ROOT_WORDS: Final = frozenset(
    normalize(w, fold_teh_marbuta=True)
    # One string per group, split on spaces: easier to read than a list of quoted words.
    for w in (  # noqa: SIM905  (a grouped word list, commented per group)
        # The guards every analyzer must keep.
        "وزير وزراء وزارة بلد بلدة بلاد كتاب كتب فلسطين ليبيا ألبانيا ألمانيا "
        # و that is part of the root, with a remainder that is a word.
        "واحد وادي والي وحدة وحده وجود وسائل ورقة وفاة وفد وطن وطني وكالة ولاية "
        "ولايات والد والدة واقع واشنطن وكيل وليد وئام "
        # ف, ب, ك, ل of the root.
        "فكرة فريق فرصة فترة فاتورة فيلم بريد بيان برنامج بحيرة بلال "
        "كامل كريم كافة كانت كلمة كبير كتيبة كرامة لبنان لجنة لحظة لقاء لاعب لواء "
        "ليلى ليلة لينا "
        # ال of the root (after hamza folding: ألمانيا, إلهام, ألبوم).
        "إلهام ألبوم إلغاء ألوان ألعاب ألماني ألمانية ألباني ألبانية التزام "
    ).split()
)

#: Names whose article belongs to them, because the bare remainder is another
#: word (أسد is a lion, not Assad). Protected like the words above, and with the
#: article's own spelling rule: ل + الأسد is written للأسد, so للأسد means الأسد
#: and لالأسد is not a spelling of it.
CLITIC_ARTICLE_NAMES: Final = frozenset(normalize(w, fold_teh_marbuta=True) for w in ("الأسد",))
CLITIC_PROTECTED: Final = _ROOT_WORDS | CLITIC_ARTICLE_NAMES


def clitic_base(token: str) -> str:
    """``token`` (canonical, ة folded) without its proclitic chain, or ``token`` itself.

    The longest chain that leaves at least :data:`CLITIC_MIN_BASE` characters is
    removed, unless a word of :data:`CLITIC_PROTECTED` ends the token and
    starts inside the chain; then the next shorter chain is tried. Suffixes are
    never touched: القيصرية gives قيصريه, never قيصر.
    """
    for chain in _CHAINS_LONGEST_FIRST:
        if not token.startswith(chain) or len(token) - len(chain) < CLITIC_MIN_BASE:
            continue
        rest = token[len(chain) :]
        if chain.endswith("لل") and _ARTICLE + rest in CLITIC_ARTICLE_NAMES:
            return _ARTICLE + rest  # للاسد: ل + الاسد
        if chain.endswith("ل") and rest in CLITIC_ARTICLE_NAMES:
            continue  # لالاسد is no spelling of ل + الاسد
        if not any(token[start:] in CLITIC_PROTECTED for start in range(len(chain))):
            return rest
    return token


#: Spellings that also stand for another, added at the base's position when no
#: article precedes them: سورية is also how many outlets write the country
#: سوريا, while السورية is the adjective (Syrian) and gets nothing. Measured in
#: bench/search_eval.py (the سوريا query, and the syrian-adjective trap).
CLITIC_EQUIVALENTS: Final[dict[str, str]] = {"سوريه": "سوريا"}


def clitic_variants(token: str) -> tuple[str, ...]:
    """What the ``.clitics`` fields hold at ``token``'s position: the token, its
    :func:`clitic_base` if different, and that base's :data:`CLITIC_EQUIVALENTS`
    entry when the removed chain has no article. Two words meet when their
    variants do."""
    base = clitic_base(token)
    out = [token] if base == token else [token, base]
    chain = token[: len(token) - len(base)]
    if base in CLITIC_EQUIVALENTS and not chain.endswith((_ARTICLE, "لل")):
        out.append(CLITIC_EQUIVALENTS[base])
    return tuple(out)


def es_clitic_pattern() -> str:
    """A Java regex for Elasticsearch's stock ``pattern_capture`` filter that
    approximates :func:`clitic_base` without the plugin.

    Group 1 is the base after the longest chain. The guard can only be
    approximated: a base that is the tail of a protected word is refused
    whatever precedes it, so ولبنان keeps لبنان but a real name ending in بنان
    after a clitic is not stripped either.
    """
    chains = "|".join(sorted((c for c in PROCLITICS if c), key=len, reverse=True))
    tails = sorted(
        {
            w[i:]
            for w in CLITIC_PROTECTED
            for i in range(1, len(w))
            if len(w) - i >= CLITIC_MIN_BASE
        },
        key=len,
        reverse=True,
    )
    guard = f"(?!(?:{'|'.join(tails)})$)" if tails else ""
    return f"^(?:{chains}){guard}(.{{{CLITIC_MIN_BASE},}})$"
