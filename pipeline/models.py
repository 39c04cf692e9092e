"""The typed messages that travel between rasd's stages.

Each Kafka topic carries one model: ``rasd.items`` a :class:`FeedItem`,
``rasd.articles`` an :class:`Article`, ``rasd.unique`` a
:class:`DedupedArticle`, ``rasd.enriched`` an :class:`EnrichedArticle` and
``rasd.alerts`` an :class:`Alert`. Each stage's model extends the previous one,
so a message carries everything decided upstream: the article ``id`` and the
monthly ``index_name`` are fixed when the item is first seen and never change.
Every model has a ``schema_version`` and JSON (de)serialization;
:meth:`RasdModel.from_json` turns anything undecodable into a
:class:`~pipeline.errors.PermanentError` with reason ``undecodable`` so that the
worker sends it to the DLQ. Datetimes are timezone-aware and stored in UTC.
Titles and bodies are plain text, never markup. Unknown JSON fields are
ignored, so an older worker can read a newer message of the same major shape.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from pipeline.errors import PermanentError

__all__ = [
    "Alert",
    "Article",
    "DedupedArticle",
    "DuplicateKind",
    "EnrichedArticle",
    "Entity",
    "FeedItem",
    "GeoPoint",
    "Match",
    "Place",
    "RasdModel",
    "RuleMatch",
    "SignedArticle",
    "UtcDatetime",
    "alert_id",
    "article_fields",
    "monthly_index",
]


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


#: A timezone-aware datetime, converted to UTC. Naive datetimes are rejected:
#: a guessed timezone is how alerting tools end up hours late.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]

#: ``url``: same canonical URL as another article; ``body``: the same canonical
#: body; ``near``: a near-duplicate text (MinHash, see :mod:`pipeline.neardup`).
DuplicateKind = Literal["url", "body", "near"]


def monthly_index(namespace: str, first_seen: datetime) -> str:
    """``<namespace>-articles-YYYY.MM`` for the UTC month of ``first_seen``."""
    if first_seen.tzinfo is None:
        raise ValueError("first_seen must be timezone-aware")
    return f"{namespace}-articles-{first_seen.astimezone(UTC):%Y.%m}"


def alert_id(rule_id: str, cluster_id: str) -> str:
    """Stable alert id: one alert per (rule, story cluster), however often it is seen."""
    return hashlib.sha256(f"{rule_id}\x1f{cluster_id}".encode()).hexdigest()[:32]


class RasdModel(BaseModel):
    """Base of every message: immutable, versioned, JSON on the wire."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    #: Bump when a field changes meaning or a required field is added.
    SCHEMA_VERSION: ClassVar[int] = 1
    schema_version: int = 1

    def to_json(self) -> bytes:
        return self.model_dump_json().encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes | str) -> Self:
        """Decode a message; raise ``PermanentError("undecodable", …)`` if impossible."""
        try:
            obj = cls.model_validate_json(data)
        except ValidationError as exc:
            raise PermanentError("undecodable", f"{cls.__name__}: {exc}") from exc
        if obj.schema_version > cls.SCHEMA_VERSION:
            raise PermanentError(
                "undecodable",
                f"{cls.__name__}: schema_version {obj.schema_version} is newer than "
                f"{cls.SCHEMA_VERSION}",
            )
        return obj


class FeedItem(RasdModel):
    """A link discovered in a feed; ``id`` and ``index_name`` are fixed here."""

    id: str = Field(min_length=1)
    url: str
    canonical_url: str
    feed_url: str
    outlet: str
    feed_name: str
    country: str
    language: str
    title: str = ""
    summary: str = ""
    published_at: UtcDatetime | None = None
    first_seen: UtcDatetime
    index_name: str = Field(min_length=1)


class Article(FeedItem):
    """A fetched and extracted page (plain text)."""

    body: str = ""
    author: str | None = None
    image_url: str | None = None
    charset: str | None = None
    extracted_title: str | None = None
    #: Language of the extracted text (``ar``, ``fa``…), the page's lang attribute if undetermined.
    page_language: str | None = None
    #: The page's own ``rel=canonical`` link (http/https only), next to the feed-derived one.
    page_canonical_url: str | None = None
    fetched_at: UtcDatetime
    http_status: int

    @classmethod
    def from_item(
        cls,
        item: FeedItem,
        *,
        body: str,
        fetched_at: datetime,
        http_status: int,
        author: str | None = None,
        image_url: str | None = None,
        charset: str | None = None,
        extracted_title: str | None = None,
        page_language: str | None = None,
        page_canonical_url: str | None = None,
    ) -> Article:
        """The extract stage's constructor: the item's fields plus what the page gave."""
        # Copy only FeedItem's own fields, so passing a subclass instance works too.
        fields = {k: getattr(item, k) for k in FeedItem.model_fields if k != "schema_version"}
        return Article(
            **fields,
            body=body,
            fetched_at=fetched_at,
            http_status=http_status,
            author=author,
            image_url=image_url,
            charset=charset,
            extracted_title=extracted_title,
            page_language=page_language,
            page_canonical_url=page_canonical_url,
        )


class SignedArticle(Article):
    """An article with its text keys (topic ``rasd.signed``, the dedupe stage's halfway point).

    The dedupe stage computes the keys on N workers in parallel; the clustering
    step, a single writer, decides on them without tokenizing again.
    ``minhash`` is empty when the body is too short to compare.
    """

    body_hash: str
    body_words: int = Field(ge=0)
    minhash: str = ""


class DedupedArticle(Article):
    """An article with the dedupe stage's verdict (topic ``rasd.unique``).

    ``cluster_id`` is the id of the first article of the story; an article that
    is not a duplicate is its own cluster. Duplicates still flow on, marked,
    because which outlets carried a story matters.
    """

    body_hash: str
    is_duplicate: bool = False
    duplicate_kind: DuplicateKind | None = None
    duplicate_of: str | None = None
    cluster_id: str


class Match(RasdModel):
    """Where a rule term matched: ``surface`` is ``field_text[start:end]``."""

    term: str
    surface: str
    field: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)


class RuleMatch(Match):
    """A :class:`Match` with the rule it belongs to, as enrich found it."""

    rule_id: str
    rule_name: str
    severity: str = "medium"

    def match(self) -> Match:
        """The plain :class:`Match` an alert carries."""
        return Match(
            term=self.term, surface=self.surface, field=self.field, start=self.start, end=self.end
        )


class _Value(BaseModel):
    """A value inside a message (no version of its own)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class GeoPoint(_Value):
    """A WGS84 point, as Elasticsearch's ``geo_point`` takes it."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class Place(_Value):
    """A place an article names, from the gazetteers (:mod:`pipeline.gazetteer`)."""

    name: str
    #: ``geonames:<id>`` or ``rasd:<id>`` (the checked-in supplement, or a user's file).
    id: str
    geonames_id: int | None = None
    kind: str = "city"
    country: str
    #: The governorate / first-level region's name (its GeoNames code if unnamed).
    admin1: str | None = None
    location: GeoPoint | None = None


class Entity(_Value):
    """A person or organisation an article names (``type``: person, armed_group…)."""

    name: str
    type: str
    id: str


class EnrichedArticle(DedupedArticle):
    """What gets indexed and matched against rules (topic ``rasd.enriched``)."""

    language_detected: str
    normalized_title: str
    normalized_body: str
    word_count: int = Field(ge=0)
    matched_rules: list[str] = Field(default_factory=list)
    #: Every hit behind ``matched_rules``: the rules are matched once, at enrich,
    #: and the alert stage builds its alerts from these (not indexed).
    rule_matches: list[RuleMatch] = Field(default_factory=list)
    #: Every place named, once each, in order of first mention (title first).
    places: list[Place] = Field(default_factory=list)
    #: ISO codes of the countries named, or of the places named.
    countries: list[str] = Field(default_factory=list)
    entities: list[Entity] = Field(default_factory=list)
    #: The place the story is about: most mentions, headline and first paragraph weigh more.
    primary_place: Place | None = None


class Alert(RasdModel):
    """One alert per (rule, story cluster); ``id`` is :func:`alert_id`."""

    id: str
    rule_id: str
    rule_name: str
    article_id: str
    cluster_id: str
    url: str
    title: str
    outlet: str
    matches: list[Match]
    created_at: UtcDatetime
    #: From the rule (info, low, medium, high, critical); older alerts lack it.
    severity: str = "medium"
    #: Raised inside the rule's realert window: recorded, not delivered.
    throttled: bool = False


def article_fields(article: Article) -> dict[str, Any]:
    """The ``Article`` fields of ``article`` (also when it is a subclass instance)."""
    return {k: getattr(article, k) for k in Article.model_fields if k != "schema_version"}
