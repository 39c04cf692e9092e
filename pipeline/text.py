"""Bytes to text, and markup to plain text: pure helpers shared by feeds and pages.

:func:`decode_body` holds the charset rules of every fetched body (BOM, HTTP
charset, in-document declaration, UTF-8, an explicit windows-1256/ISO-8859-6
path, detection); :func:`plain_text` turns a feed's or a page's markup into
the plain text that leaves rasd (never markup).
"""

from __future__ import annotations

import codecs
import html
import re
from typing import Final

# lxml ships no type information and the project does not depend on lxml-stubs.
import lxml.etree  # type: ignore[import-untyped]
import lxml.html  # type: ignore[import-untyped]

__all__ = ["decode_body", "plain_text"]

# --------------------------------------------------------------------------- charsets

_BOMS: Final = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE, whose BOM is its prefix
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_LABELS: Final = {
    "cp1256": "windows-1256",
    "iso8859-6": "iso-8859-6",
    "cp1252": "windows-1252",
    "iso8859-1": "iso-8859-1",
    "ascii": "us-ascii",
}
# Labels that servers and templates put on pages by default; Arabic text
# behind them is really windows-1256 (see _arabic_override).
_LATIN_CODECS: Final = frozenset({"cp1252", "iso8859-1", "latin-1"})
_DOC_CHARSET: Final = re.compile(
    rb"""<meta[^>]{0,512}?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]{1,40})"""
    rb"""|<\?xml[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})""",
    re.IGNORECASE,
)


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    try:
        return codecs.lookup(label.strip().strip("\"'")).name
    except LookupError:
        return None


def _label(codec: str) -> str:
    return _LABELS.get(codec, codec)


def _arabic_share(text: str) -> float:
    """Share of Arabic-script characters among the non-ASCII ones."""
    high = [c for c in text if ord(c) > 0x7F]
    if not high:
        return 0.0
    arabic = sum(1 for c in high if "\u0600" <= c <= "\u06ff" or "\ufb50" <= c <= "\ufeff")
    return arabic / len(high)


def _strict(data: bytes, codec: str) -> str | None:
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def _arabic_single_byte(data: bytes) -> tuple[str, str] | None:
    """The better of windows-1256 and ISO-8859-6, if either reads as Arabic text.

    Generic detectors confuse the two (and both with Latin code pages). The two
    are told apart by decoding strictly and counting Arabic letters: ISO-8859-6
    leaves 0xDB-0xDF undefined, where windows-1256 has ف ق ك, and windows-1256
    turns ISO-8859-6's ق ه و ى ي into Latin letters.
    """
    best: tuple[float, str, str] | None = None
    for codec in ("cp1256", "iso8859-6"):  # windows-1256 first: it wins ties
        text = _strict(data, codec)
        if text is None:
            continue
        share = _arabic_share(text)
        if best is None or share > best[0]:
            best = (share, text, codec)
    if best is None or best[0] < 0.5:
        return None
    return best[1], best[2]


def _arabic_override(data: bytes, codec: str, text: str) -> tuple[str, str]:
    # A page labelled Latin-1/windows-1252 whose bytes read as Arabic in
    # windows-1256 was mislabelled; real Latin text keeps its accented letters
    # at the same code points in windows-1256 and so is not taken for Arabic.
    if codec in _LATIN_CODECS and _arabic_share(text) < 0.5:
        arabic = _strict(data, "cp1256")
        if arabic is not None and _arabic_share(arabic) >= 0.8:
            return arabic, "cp1256"
    return text, codec


def decode_body(content: bytes, declared: str | None = None) -> tuple[str, str]:
    """Decode an HTML or XML body; return the text and the charset label used.

    The order: a byte-order mark (it cannot be there by accident, so it wins,
    as in the WHATWG encoding rules), the HTTP ``charset``, the document's own
    ``<meta charset>``/``http-equiv``/XML ``encoding``, strict UTF-8, the
    explicit windows-1256/ISO-8859-6 path, then ``charset_normalizer``. A
    declared charset is used only if the bytes decode under it without error,
    so a wrong label falls through to the next source instead of producing
    U+FFFD; a Latin label on Arabic bytes is read as windows-1256.
    """
    for bom, codec in _BOMS:
        if content.startswith(bom):
            text = _strict(content[len(bom) :], codec)
            if text is not None:
                return text, _label(codec)
    candidates: list[str | None] = [_codec(declared)]
    match = _DOC_CHARSET.search(content[:4096])
    if match:
        in_doc = _codec((match.group(1) or match.group(2)).decode("ascii"))
        # A declaration readable as ASCII cannot be in UTF-16/32 (WHATWG: utf-8).
        if in_doc is not None and in_doc.startswith(("utf-16", "utf-32")):
            in_doc = "utf-8"
        candidates.append(in_doc)
    for candidate in candidates:
        decoded = _strict(content, candidate) if candidate else None
        if candidate and decoded is not None:
            decoded, used = _arabic_override(content, candidate, decoded)
            return decoded, _label(used)
    decoded = _strict(content, "utf-8")
    if decoded is not None:
        return decoded, "utf-8"
    arabic = _arabic_single_byte(content)
    if arabic is not None:
        return arabic[0], _label(arabic[1])
    from charset_normalizer import from_bytes  # only needed for the rare leftovers

    guess = from_bytes(content).best()
    if guess is not None and guess.encoding:
        return str(guess), _label(_codec(guess.encoding) or guess.encoding)
    return content.decode("utf-8", errors="replace"), "utf-8"


# --------------------------------------------------------------------------- markup

# Elements whose text is code or chrome, never prose: dropped with their content.
_NON_TEXT: Final = ("script", "style", "noscript", "template", "iframe", "object", "svg")
_BLOCKS: Final = (
    "p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "td", "th",
    "table", "blockquote", "section", "article", "header", "footer", "hr", "dd", "dt", "figure",
)  # fmt: skip
_TAG: Final = re.compile(r"<\s*[A-Za-z/!?][^>]*>")


def _strip_markup(text: str) -> str:
    try:
        root = lxml.html.fragment_fromstring(text, create_parent="div")
    except (lxml.etree.ParserError, ValueError):
        return html.unescape(_TAG.sub(" ", text))
    lxml.etree.strip_elements(root, *_NON_TEXT, with_tail=False)
    # Block boundaries become spaces, so "<p>a</p><p>b</p>" does not read "ab";
    # inline ones (b, a, span) may sit inside a word and are left alone.
    for element in root.iter(*_BLOCKS):
        element.tail = " " + (element.tail or "")
    return str(root.text_content())


def plain_text(value: str | None) -> str:
    """Markup stripped (with script and style content), entities decoded, spaces collapsed."""
    if not value:
        return ""
    text = value
    # Feeds often escape their markup once or twice more ("&amp;lt;b&amp;gt;"):
    # each pass removes the markup that the previous one only unescaped.
    for _ in range(4):
        if "<" not in text and "&" not in text:
            break
        stripped = _strip_markup(text)
        if stripped == text:
            break
        text = stripped
    # Whatever escaping depth remains, no tag-shaped text leaves this function.
    return " ".join(_TAG.sub(" ", text).split())
