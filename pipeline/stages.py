"""The pure stages of the pipeline: discover, dedupe, enrich and alert.

Each stage is a typed function (or a small class with one method) from model
to model; a Kafka worker, a unit test and the ``rasd rules test`` command run
the same code. The order is the design's: ``Article`` → :class:`Deduper` →
``DedupedArticle`` → :func:`enrich` → ``EnrichedArticle`` → :func:`build_alerts`.
Dedupe runs first because it needs only the canonical URL and a hash of the
body, and both are computed here with the same :mod:`pipeline.arabic` form the
enrich stage uses (:func:`body_hash`), so nothing is computed twice for a
different answer. :func:`enrich` also accepts a plain ``Article`` (it then
computes the hash and marks the article as its own cluster), which is what the
rules test command and tests use. Dedupe state sits behind the
:class:`DedupeState` port; near-duplicates come from
:class:`pipeline.neardup.NearDuplicateIndex` (MinHash/LSH over the same tokens).
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, Protocol
from urllib.parse import urljoin

from datasketch import MinHash

from pipeline.arabic import normalize, tokenize
from pipeline.errors import PermanentError
from pipeline.feeds import Feed
from pipeline.models import (
    Alert,
    Article,
    DedupedArticle,
    DuplicateKind,
    EnrichedArticle,
    FeedItem,
    SignedArticle,
    alert_id,
    monthly_index,
)
from pipeline.neardup import (
    NearDupConfig,
    NearDuplicateIndex,
    decode_signature,
    encode_signature,
    signature,
)
from pipeline.rules import RuleHit, RuleMatcher
from pipeline.urls import article_id, canonicalize_url

__all__ = [
    "MIN_BODY_WORDS_FOR_DEDUPE",
    "DedupeEntry",
    "DedupeState",
    "Deduper",
    "InMemoryDedupeState",
    "TextKeys",
    "body_hash",
    "build_alerts",
    "detect_language",
    "enrich",
    "make_feed_item",
    "sign",
    "text_keys",
]

# --------------------------------------------------------------------------- discover


def make_feed_item(
    feed: Feed,
    *,
    link: str,
    first_seen: datetime,
    namespace: str,
    title: str = "",
    summary: str = "",
    published_at: datetime | None = None,
) -> FeedItem:
    """Build the item for one feed entry: fixes its id and monthly index once.

    ``link`` may be relative (Atom feeds); it is resolved against the feed URL.
    Raises ``PermanentError("bad_url")`` for a link that is not http(s).
    """
    canonical = canonicalize_url(link, base=feed.url)
    # The fetch address is the link as published, only made absolute: the
    # canonical form may name a host (bare, https) that the site does not serve.
    absolute = urljoin(feed.url, link.strip())
    return FeedItem(
        id=article_id(canonical),
        url=absolute,
        canonical_url=canonical,
        feed_url=feed.url,
        outlet=feed.outlet,
        feed_name=feed.name,
        country=feed.country,
        language=feed.language,
        title=title,
        summary=summary,
        published_at=published_at,
        first_seen=first_seen,
        index_name=monthly_index(namespace, first_seen),
    )


# --------------------------------------------------------------------------- text keys


def _body_words(body: str) -> list[str]:
    return [t.norm for t in tokenize(body, fold_teh_marbuta=True)]


def _hash_words(words: list[str]) -> str:
    return hashlib.sha256(" ".join(words).encode("utf-8")).hexdigest()


def body_hash(body: str) -> str:
    """SHA-256 of the body's canonical tokens (ة folded), joined by single spaces.

    Joining tokens makes the key blind to whitespace, punctuation and markup
    leftovers that differ between two copies of the same wire story.
    """
    return _hash_words(_body_words(body))


# --------------------------------------------------------------------------- language

# Letters only Urdu uses (Persian and Arabic never do).
_URDU_LETTERS: Final = frozenset("ٹڈڑںےۓ")
# Letters of Persian (and Urdu) that Arabic lacks. ک and ی are left out on
# purpose: Arabic typed on a Persian keyboard is full of them.
_PERSIAN_LETTERS: Final = frozenset("پچژگ")
# Function words, compared after NFKC and mark removal but before letter folds
# (Persian "که" must not be confused with anything Arabic).
_URDU_WORDS: Final = frozenset({"ہے", "ہیں", "کے", "کی", "کا", "کو", "نے", "سے", "میں", "اور"})
_PERSIAN_WORDS: Final = frozenset(
    {"است", "این", "که", "را", "می", "های", "برای", "آن", "شد", "بود"}
)
# Arabic ones are compared on the canonical form, so فی/علی typed with ی count.
_ARABIC_WORDS: Final = frozenset(
    {"في", "على", "الي", "الى", "عن", "مع", "التي", "الذي", "هذا", "هذه", "ذلك", "قد", "كان", "او"}
)
_ENGLISH_WORDS: Final = frozenset(
    {"the", "and", "of", "to", "in", "is", "on", "for", "with", "that", "was", "by"}
)
# Below this share of Urdu-only letters, a few Urdu names in an Arabic text do
# not flip its language.
_URDU_LETTER_SHARE: Final = 0.005
_PERSIAN_LETTER_SHARE: Final = 0.01


def _is_arabic_script(ch: str) -> bool:
    return "\u0600" <= ch <= "\u06ff" or "\u0750" <= ch <= "\u077f" or "\u08a0" <= ch <= "\u08ff"


def detect_language(text: str) -> str:
    """``ar``, ``fa``, ``ur``, ``en`` or ``und`` (undetermined), from script evidence.

    Distinctive letters and a handful of function words decide; this is enough
    to route Arabic away from Persian and Urdu feeds and to flag Latin-script
    pages, not a general language identifier.
    """
    text = unicodedata.normalize("NFKC", text)
    arabic = latin = urdu_letters = persian_letters = 0
    for ch in text:
        if ch.isalpha():
            if _is_arabic_script(ch):
                arabic += 1
                if ch in _URDU_LETTERS:
                    urdu_letters += 1
                elif ch in _PERSIAN_LETTERS:
                    persian_letters += 1
            elif ch.isascii() or unicodedata.name(ch, "").startswith("LATIN"):
                latin += 1
    if arabic == 0 and latin == 0:
        return "und"
    tokens = tokenize(text)
    if latin > arabic:
        return "en" if {t.norm for t in tokens} & _ENGLISH_WORDS else "und"

    raw_words = [
        "".join(c for c in t.surface if unicodedata.category(c) != "Mn" and c != "\u200c")
        for t in tokens
    ]
    urdu_votes = sum(w in _URDU_WORDS for w in raw_words)
    persian_votes = sum(w in _PERSIAN_WORDS for w in raw_words)
    arabic_votes = sum(normalize(w) in _ARABIC_WORDS for w in raw_words)

    if urdu_letters / arabic >= _URDU_LETTER_SHARE or urdu_votes > max(persian_votes, arabic_votes):
        return "ur"
    if persian_votes > arabic_votes or (
        arabic_votes == 0 and persian_letters / arabic >= _PERSIAN_LETTER_SHARE
    ):
        return "fa"
    return "ar"


# --------------------------------------------------------------------------- dedupe

KeyKind = Literal["url", "body", "canonical"]

#: Bodies shorter than this (in tokens) are not deduped by hash: "اقرأ المزيد"
#: or an empty extraction would otherwise make unrelated articles duplicates.
MIN_BODY_WORDS_FOR_DEDUPE: Final = 20


@dataclass(frozen=True, slots=True)
class DedupeEntry:
    """What the state remembers for a key: the first article and its cluster.

    Under an article's own id the entry also records the verdict it got
    (``kind``, ``duplicate_of``), so that a re-delivery gets the same verdict,
    and where the article was first seen (``first_seen``, ISO 8601, and the
    ``index_name`` derived from it), so that a re-delivery in a later month still
    lands in the first month's index and never makes a second document.
    ``signature`` is the article's MinHash (:func:`pipeline.neardup.encode_signature`),
    so that a restart rebuilds the LSH index from the state alone (entries of
    ``url`` and ``body`` copies are not indexed) and a page naming this
    article as its canonical can be checked against its text.
    """

    article_id: str
    cluster_id: str
    kind: DuplicateKind | None = None
    duplicate_of: str | None = None
    first_seen: str | None = None
    index_name: str | None = None
    signature: str | None = None


class DedupeState(Protocol):
    """The dedupe stage's storage port.

    ``put`` must be *put-if-absent* and return the entry that is stored after
    the call (the first writer wins), so that a re-delivery keeps its first
    verdict. The N-worker design (``docs/dedupe.md``) gives the state a single
    writer at a time, so a store does not need cross-process atomicity.
    """

    def get(self, kind: KeyKind, key: str) -> DedupeEntry | None: ...

    def put(self, kind: KeyKind, key: str, entry: DedupeEntry) -> DedupeEntry: ...


class InMemoryDedupeState:
    """A bounded in-process :class:`DedupeState` (least recently used keys go first)."""

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[tuple[KeyKind, str], DedupeEntry] = OrderedDict()

    def get(self, kind: KeyKind, key: str) -> DedupeEntry | None:
        entry = self._data.get((kind, key))
        if entry is not None:
            self._data.move_to_end((kind, key))
        return entry

    def put(self, kind: KeyKind, key: str, entry: DedupeEntry) -> DedupeEntry:
        existing = self.get(kind, key)
        if existing is not None:
            return existing
        self._data[(kind, key)] = entry
        if len(self._data) > self.max_entries:
            self._data.popitem(last=False)
        return entry

    def __len__(self) -> int:
        return len(self._data)


@dataclass(frozen=True, slots=True)
class TextKeys:
    """The dedupe keys of a body: computed once, on any worker (:meth:`Deduper.keys`)."""

    body_hash: str
    words: int
    signature: MinHash | None

    def encoded_signature(self) -> str:
        return encode_signature(self.signature) if self.signature is not None else ""


def text_keys(body: str, config: NearDupConfig | None = None) -> TextKeys:
    """The body hash, token count and (given a config) MinHash of ``body``."""
    words = _body_words(body)
    sig = signature(words, config) if config is not None else None
    return TextKeys(_hash_words(words), len(words), sig)


def sign(article: Article, config: NearDupConfig) -> SignedArticle:
    """The dedupe stage's parallel half: the article with its text keys attached."""
    keys = text_keys(article.body, config)
    return SignedArticle(
        **_fields_of(article),
        body_hash=keys.body_hash,
        body_words=keys.words,
        minhash=keys.encoded_signature(),
    )


class Deduper:
    """The dedupe stage: ``check(article) -> DedupedArticle``.

    Verdicts, in order:

    * **Same id seen before** (a re-delivery, or an update of the same article
      at the same canonical URL, possibly with changed text): the verdict and
      cluster decided the first time are kept, so replays and updates give the
      same verdict, the same document and the same alert key.
    * **Canonical URL of an earlier, different article** (the extract stage
      may replace ``canonical_url`` with the page's ``rel=canonical`` or final
      redirect target): ``duplicate_kind="url"``.
    * **Same canonical body as an earlier article**: ``duplicate_kind="body"``,
      ``cluster_id`` = that article's cluster (its id, unless it joined one).
    * **A near-duplicate of an article of the last window** (MinHash/LSH,
      :mod:`pipeline.neardup`): ``duplicate_kind="near"``, ``duplicate_of`` = the
      most similar earlier article, ``cluster_id`` = its cluster.
    * otherwise a new story: its own cluster.

    Every verdict is a new :class:`DedupedArticle`; duplicates are marked, never
    dropped. :meth:`keys` is the pure, parallel half (tokens, hash, MinHash);
    :meth:`check` with precomputed keys is the half that must see every
    decision before it, so it runs as a single writer.
    """

    def __init__(self, state: DedupeState, near: NearDuplicateIndex | None = None) -> None:
        self.state = state
        self.near = near

    def keys(self, body: str) -> TextKeys:
        return text_keys(body, self.near.config if self.near is not None else None)

    def keys_of(self, article: SignedArticle) -> TextKeys:
        """The keys a :class:`SignedArticle` carries (no tokenizing again)."""
        sig = None
        if self.near is not None and article.minhash:
            try:
                sig = decode_signature(article.minhash, self.near.config)
            except ValueError as exc:  # corrupt, or made with other parameters
                raise PermanentError("undecodable", f"minhash of {article.id}: {exc}") from exc
        return TextKeys(article.body_hash, article.body_words, sig)

    def remember(self, kind: KeyKind, key: str, entry: DedupeEntry) -> None:
        """Feed the near-duplicate index from a state entry read back after a restart."""
        if (
            self.near is None
            or kind != "url"
            or key != entry.article_id
            or entry.kind in ("url", "body")  # copies were never in the index
            or not entry.signature
            or not entry.first_seen
        ):
            return
        self.near.add(
            entry.article_id,
            entry.cluster_id,
            decode_signature(entry.signature, self.near.config),
            datetime.fromisoformat(entry.first_seen),
        )

    def _shares_text(self, keys: TextKeys, other: DedupeEntry) -> bool:
        """Whether ``keys`` and the article of ``other`` may be one story's text.

        True unless both have a MinHash and their estimated Jaccard similarity
        is under :attr:`NearDupConfig.canonical_threshold`: without signatures
        (near-duplicate search off, or a body too short) the canonical URL is
        trusted alone.
        """
        if self.near is None or keys.signature is None or not other.signature:
            return True
        try:
            theirs = decode_signature(other.signature, self.near.config)
        except ValueError:
            return True
        similarity = float(keys.signature.jaccard(theirs))
        return similarity >= self.near.config.canonical_threshold

    def check(self, article: Article, keys: TextKeys | None = None) -> DedupedArticle:
        keys = keys or self.keys(article.body)
        digest = keys.body_hash
        dedupe_body = keys.words >= MIN_BODY_WORDS_FOR_DEDUPE

        seen, index = article.first_seen.isoformat(), article.index_name
        minhash = keys.encoded_signature() or None  # kept in every entry of an article

        def verdict(
            cluster: str,
            kind: DuplicateKind | None = None,
            of: str | None = None,
            first: DedupeEntry | None = None,
        ) -> DedupedArticle:
            fields = _fields_of(article)
            if first is not None and first.first_seen and first.index_name:
                fields["first_seen"] = datetime.fromisoformat(first.first_seen)
                fields["index_name"] = first.index_name
            return DedupedArticle(
                **fields,
                body_hash=digest,
                is_duplicate=kind is not None,
                duplicate_kind=kind,
                duplicate_of=of,
                cluster_id=cluster,
            )

        own = self.state.get("url", article.id)
        if own is not None:
            if dedupe_body:  # an update may have a new body; later copies of it join us
                self.state.put("body", digest, DedupeEntry(article.id, own.cluster_id))
            return verdict(own.cluster_id, own.kind, own.duplicate_of, own)

        # A copy that names, as its canonical URL, an article already seen; or
        # the original arriving after a copy that named it. Only an article
        # that lives at the canonical URL counts: a canonical shared by
        # unrelated pages (a section page, a CMS bug) never makes a copy.
        # The two must also share text: an article at the canonical URL that is
        # another story (a CMS that pins one story's URL on every page) is not
        # the original of this one.
        alias_key = article_id(article.canonical_url)
        earlier: DedupeEntry | None = None
        if alias_key != article.id:
            at_canonical = self.state.get("url", alias_key)
            if (
                at_canonical is not None
                and at_canonical.article_id == alias_key
                and self._shares_text(keys, at_canonical)
            ):
                earlier = at_canonical
        if earlier is None:
            named = self.state.get("canonical", article.id)
            if (
                named is not None
                and named.article_id != article.id
                and self._shares_text(keys, self.state.get("url", named.article_id) or named)
            ):
                earlier = named
        if earlier is not None:
            self.state.put(
                "url",
                article.id,
                DedupeEntry(
                    article.id,
                    earlier.cluster_id,
                    "url",
                    earlier.article_id,
                    first_seen=seen,
                    index_name=index,
                    signature=minhash,
                ),
            )
            return verdict(earlier.cluster_id, "url", earlier.article_id)

        if dedupe_body:
            first = self.state.put("body", digest, DedupeEntry(article.id, article.id))
            if first.article_id != article.id:
                self.state.put(
                    "url",
                    article.id,
                    DedupeEntry(
                        article.id,
                        first.cluster_id,
                        "body",
                        first.article_id,
                        first_seen=seen,
                        index_name=index,
                        signature=minhash,
                    ),
                )
                return verdict(first.cluster_id, "body", first.article_id)

        cluster: str = article.id
        kind: DuplicateKind | None = None
        of: str | None = None
        sig = keys.signature if self.near is not None else None
        if sig is not None and self.near is not None:
            match = self.near.query(sig, exclude=article.id)
            if match is not None:
                cluster, kind, of = match.cluster_id, "near", match.article_id
        entry = DedupeEntry(
            article.id,
            cluster,
            kind,
            of,
            first_seen=seen,
            index_name=index,
            signature=minhash,
        )
        stored = self.state.put("url", article.id, entry)
        if sig is not None and self.near is not None:
            self.near.add(article.id, stored.cluster_id, sig, article.first_seen)
        if alias_key != article.id:
            self.state.put("canonical", alias_key, DedupeEntry(article.id, stored.cluster_id))
        return verdict(stored.cluster_id, stored.kind, stored.duplicate_of, stored)


def _fields_of(article: Article) -> dict[str, Any]:
    """The ``Article`` fields of ``article`` (also when it is a subclass instance)."""
    return {k: getattr(article, k) for k in Article.model_fields if k != "schema_version"}


# --------------------------------------------------------------------------- enrich


def enrich(article: Article, matcher: RuleMatcher | None = None) -> EnrichedArticle:
    """Language, canonical text, word count (and matched rule ids, given a matcher).

    A ``DedupedArticle`` keeps its verdict; a plain ``Article`` is treated as a
    new story (its own cluster, not a duplicate).
    """
    if isinstance(article, DedupedArticle):
        verdict: dict[str, Any] = {
            "body_hash": article.body_hash,
            "is_duplicate": article.is_duplicate,
            "duplicate_kind": article.duplicate_kind,
            "duplicate_of": article.duplicate_of,
            "cluster_id": article.cluster_id,
        }
    else:
        verdict = {"body_hash": body_hash(article.body), "cluster_id": article.id}
    title = article.extracted_title or article.title
    matched: list[str] = []
    if matcher is not None:
        matched = list(dict.fromkeys(hit.rule_id for hit in matcher.match(article)))
    return EnrichedArticle(
        **_fields_of(article),
        **verdict,
        language_detected=detect_language(f"{title}\n{article.body}"),
        normalized_title=normalize(article.title),
        normalized_body=normalize(article.body),
        word_count=len(tokenize(article.body)),
        matched_rules=matched,
    )


# --------------------------------------------------------------------------- alert


def build_alerts(
    article: EnrichedArticle, hits: list[RuleHit], now: Callable[[], datetime]
) -> list[Alert]:
    """One :class:`Alert` per rule that fired; ids are per (rule, cluster)."""
    by_rule: dict[str, list[RuleHit]] = {}
    for hit in hits:
        by_rule.setdefault(hit.rule_id, []).append(hit)
    created = now()
    return [
        Alert(
            id=alert_id(rule_id, article.cluster_id),
            rule_id=rule_id,
            rule_name=rule_hits[0].rule_name,
            article_id=article.id,
            cluster_id=article.cluster_id,
            url=article.url,
            title=article.title,
            outlet=article.outlet,
            matches=[h.to_match() for h in rule_hits],
            created_at=created,
            severity=rule_hits[0].severity,
        )
        for rule_id, rule_hits in by_rule.items()
    ]
