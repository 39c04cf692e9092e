"""The dedupe stages' pure logic: text keys (:func:`sign`) and the verdicts (:class:`Deduper`).

Dedupe runs before enrichment because it needs only the canonical URL and a
hash of the body, computed with the same :mod:`pipeline.arabic` form that
enrichment uses (:func:`pipeline.arabic.body_hash`), so nothing is computed
twice for a different answer. :func:`sign` is the parallel half (tokens, hash,
MinHash, on any number of workers); :meth:`Deduper.check` is the half that must
see every decision before it, so it runs as a single writer. Its state sits
behind the :class:`DedupeState` port; near-duplicates come from
:class:`pipeline.neardup.NearDuplicateIndex` (MinHash/LSH over the same tokens).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final, Literal, Protocol

from pipeline.arabic import body_words, hash_words
from pipeline.errors import PermanentError
from pipeline.models import (
    Article,
    DedupedArticle,
    DuplicateKind,
    SignedArticle,
    article_fields,
)
from pipeline.neardup import (
    NearDupConfig,
    NearMatch,
    decode_signature,
    decode_values,
    encode_signature,
    signature,
)
from pipeline.urls import article_id

if TYPE_CHECKING:
    import numpy as np
    from datasketch import MinHash

__all__ = [
    "MIN_BODY_WORDS_FOR_DEDUPE",
    "DedupeEntry",
    "DedupeState",
    "Deduper",
    "InMemoryDedupeState",
    "KeyKind",
    "NearIndex",
    "TextKeys",
    "sign",
    "text_keys",
]

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


class NearIndex(Protocol):
    """The near-duplicate search the deduper asks: :class:`pipeline.neardup.NearDuplicateIndex`,
    or the same answers from a file (:class:`connectors.neardup_store.DiskNearDuplicateIndex`)."""

    @property
    def config(self) -> NearDupConfig: ...

    def query(self, sig: MinHash | np.ndarray, exclude: str | None = None) -> NearMatch | None: ...

    def add(
        self, article_id: str, cluster_id: str, sig: MinHash | np.ndarray, first_seen: datetime
    ) -> None: ...


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

    def put(
        self, kind: KeyKind, key: str, entry: DedupeEntry, at: float | None = None
    ) -> DedupeEntry:
        """Put-if-absent (``at``, when the entry was written, is not used here: the
        least recently used entries go first)."""
        existing = self.get(kind, key)
        if existing is not None:
            return existing
        self._data[(kind, key)] = entry
        if len(self._data) > self.max_entries:
            self._data.popitem(last=False)
        return entry

    def __len__(self) -> int:
        return len(self._data)

    def items(self) -> list[tuple[KeyKind, str, DedupeEntry]]:
        """Every entry with its key, least recently used first (what a snapshot saves).

        A list made at the call: the entries are immutable, so it can be written
        out while the state goes on changing.
        """
        return [(kind, key, entry) for (kind, key), entry in self._data.items()]

    @classmethod
    def from_items(
        cls, items: Iterable[tuple[KeyKind, str, DedupeEntry]], max_entries: int = 1_000_000
    ) -> InMemoryDedupeState:
        """The state that :meth:`items` listed, in the same order of use."""
        state = cls(max_entries)
        for kind, key, entry in items:
            state._data[(kind, key)] = entry
        while len(state._data) > max_entries:
            state._data.popitem(last=False)
        return state


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
    words = body_words(body)
    sig = signature(words, config) if config is not None else None
    return TextKeys(hash_words(words), len(words), sig)


def sign(article: Article, config: NearDupConfig) -> SignedArticle:
    """The dedupe stage's parallel half: the article with its text keys attached."""
    keys = text_keys(article.body, config)
    return SignedArticle(
        **article_fields(article),
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

    def __init__(self, state: DedupeState, near: NearIndex | None = None) -> None:
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
            # The values alone: a MinHash object would be built and dropped.
            decode_values(entry.signature, self.near.config),
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
        own = self.state.get("url", article.id)
        if own is not None:
            if keys.words >= MIN_BODY_WORDS_FOR_DEDUPE:
                # An update may have a new body; later copies of it join us.
                self.state.put("body", keys.body_hash, DedupeEntry(article.id, own.cluster_id))
            return _verdict(article, keys, own.cluster_id, own.kind, own.duplicate_of, own)
        earlier = self._original_at_canonical(article, keys)
        if earlier is not None:
            self._remember_copy(article, keys, earlier, "url")
            return _verdict(article, keys, earlier.cluster_id, "url", earlier.article_id)
        if keys.words >= MIN_BODY_WORDS_FOR_DEDUPE:
            first = self.state.put("body", keys.body_hash, DedupeEntry(article.id, article.id))
            if first.article_id != article.id:
                self._remember_copy(article, keys, first, "body")
                return _verdict(article, keys, first.cluster_id, "body", first.article_id)
        return self._new_or_near(article, keys)

    def _original_at_canonical(self, article: Article, keys: TextKeys) -> DedupeEntry | None:
        """The earlier article this one is a URL copy of, if any.

        A copy that names, as its canonical URL, an article already seen; or
        the original arriving after a copy that named it. Only an article
        that lives at the canonical URL counts: a canonical shared by
        unrelated pages (a section page, a CMS bug) never makes a copy. The
        two must also share text: an article at the canonical URL that is
        another story (a CMS that pins one story's URL on every page) is not
        the original of this one.
        """
        alias_key = article_id(article.canonical_url)
        if alias_key != article.id:
            at_canonical = self.state.get("url", alias_key)
            if (
                at_canonical is not None
                and at_canonical.article_id == alias_key
                and self._shares_text(keys, at_canonical)
            ):
                return at_canonical
        named = self.state.get("canonical", article.id)
        if (
            named is not None
            and named.article_id != article.id
            and self._shares_text(keys, self.state.get("url", named.article_id) or named)
        ):
            return named
        return None

    def _remember_copy(
        self, article: Article, keys: TextKeys, first: DedupeEntry, kind: DuplicateKind
    ) -> None:
        """Record the verdict of a ``url`` or ``body`` copy of ``first`` under its own id."""
        entry = DedupeEntry(
            article.id,
            first.cluster_id,
            kind,
            first.article_id,
            first_seen=article.first_seen.isoformat(),
            index_name=article.index_name,
            signature=keys.encoded_signature() or None,
        )
        self.state.put("url", article.id, entry)

    def _new_or_near(self, article: Article, keys: TextKeys) -> DedupedArticle:
        """A new story (its own cluster), or a near-duplicate of one in the window."""
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
            first_seen=article.first_seen.isoformat(),
            index_name=article.index_name,
            signature=keys.encoded_signature() or None,
        )
        stored = self.state.put("url", article.id, entry)
        if sig is not None and self.near is not None:
            self.near.add(article.id, stored.cluster_id, sig, article.first_seen)
        alias_key = article_id(article.canonical_url)
        if alias_key != article.id:
            self.state.put("canonical", alias_key, DedupeEntry(article.id, stored.cluster_id))
        return _verdict(article, keys, stored.cluster_id, stored.kind, stored.duplicate_of, stored)


def _verdict(
    article: Article,
    keys: TextKeys,
    cluster: str,
    kind: DuplicateKind | None = None,
    of: str | None = None,
    first: DedupeEntry | None = None,
) -> DedupedArticle:
    """The article with its verdict; ``first`` (its own earlier entry) keeps its first month."""
    fields = article_fields(article)
    if first is not None and first.first_seen and first.index_name:
        fields["first_seen"] = datetime.fromisoformat(first.first_seen)
        fields["index_name"] = first.index_name
    return DedupedArticle(
        **fields,
        body_hash=keys.body_hash,
        is_duplicate=kind is not None,
        duplicate_kind=kind,
        duplicate_of=of,
        cluster_id=cluster,
    )
