"""Places, countries and entities: the gazetteers, the shared token stream, `rasd enrich`."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bench.places_eval import evaluate, load_cases
from connectors.elastic import upgrade_source
from pipeline.arabic import tokenize
from pipeline.enrichment import Enricher
from pipeline.errors import ConfigError
from pipeline.gazetteer import Gazetteers, load_gazetteers, name_spellings
from pipeline.models import Article
from pipeline.settings import Settings
from pipeline.tokens import TokenStream
from rasd.cli import app


@pytest.fixture(scope="module")
def gazetteers() -> Gazetteers:
    return load_gazetteers(cache_dir=Settings().cache_dir)


def tag(g: Gazetteers, text: str, country: str | None = "SY", title: str = "") -> Any:
    streams = [TokenStream(title, "title"), TokenStream(text, "body")]
    return g.tag(streams, outlet_country=country)


def place_ids(g: Gazetteers, text: str, country: str | None = "SY") -> list[str]:
    return [h.place.id for h in tag(g, text, country).places]


def test_the_labelled_set_meets_the_bar(gazetteers: Gazetteers) -> None:
    cases = load_cases()
    assert len(cases) >= 300 and sum(c["trap"] for c in cases) >= 100
    result = evaluate(gazetteers, cases)
    assert result["precision"] >= 0.95 and result["recall"] >= 0.90, result


@pytest.mark.parametrize(
    "text",
    [
        "نشرت الشبكة صور المعتقلين",  # pictures, not Tyre
        "قال محمد الخليل إنه شاهد الاعتقال",  # a man named al-Khalil
        "سيارة رمادية توقفت قرب الرمادي",  # no: الرمادي after قرب needs Iraq named
        "الحكومة الجديدة أدت اليمين",
        "أغلق الباب خلفه",
        "الولادة القيصرية في المستشفيات",
        "وان الحكومة لم ترد",
        "الصابون الحلبي والمطبخ الحمصي",  # nisba adjectives are not the cities
    ],
)
def test_common_words_and_names_are_not_places(gazetteers: Gazetteers, text: str) -> None:
    assert place_ids(gazetteers, text) == []


@pytest.mark.parametrize(
    ("text", "country", "place"),
    [
        ("قصف على مدينة صور جنوب لبنان", "SY", "LB"),  # a place word
        ("مواجهات في الخليل بالضفة الغربية", "SY", "PS"),  # a preposition and its region
        ("اشتباكات قرب الرمادي غرب العراق", "SY", "IQ"),  # a preposition and its country
        ("مهرجان في مدينة الجديدة المغربية", "SY", "MA"),  # El Jadida, not Jdeideh
    ],
)
def test_an_ambiguous_name_with_its_cue_is_a_place(
    gazetteers: Gazetteers, text: str, country: str, place: str
) -> None:
    found = tag(gazetteers, text, country).places
    assert found and found[0].place.country == place, [h.place for h in found]


def test_clitics_are_read_and_suffixes_are_not(gazetteers: Gazetteers) -> None:
    assert place_ids(gazetteers, "وبحلب أغلقت الأسواق ولدمشق قصة") == [
        "geonames:170063",
        "geonames:170654",
    ]
    assert "ل" in name_spellings("حلب")["لحلب"]
    assert "للخليل" in name_spellings("الخليل") and "خليل" not in name_spellings("الخليل")
    # ل + بنان is لبنان: never a spelling of another name.
    assert "لبنان" not in name_spellings("بنان") and "ولبنان" not in name_spellings("بنان")


def test_governorate_needs_its_word_and_places_carry_their_region(gazetteers: Gazetteers) -> None:
    assert place_ids(gazetteers, "في محافظة حلب") == ["rasd:SY-09"]
    city = tag(gazetteers, "في حلب").places[0]
    assert (city.place.id, city.admin1_name) == ("geonames:170063", "حلب")
    assert tag(gazetteers, "في داريا").places[0].admin1_name == "ريف دمشق"


def test_places_countries_entities_and_the_primary_place(gazetteers: Gazetteers) -> None:
    found = tag(
        gazetteers,
        "وصل الوفد إلى دمشق.\nوقالت الأمم المتحدة إن حلب وحمص تحتاجان إلى المساعدات، "
        "وزار الوفد حلب ثانية وفي حلب التقى بشار الأسد.",
        title="أطفال حمص بلا مدارس",
    )
    assert [h.place.name for h in found.places] == ["حمص", "دمشق", "حلب"]
    assert found.countries == ["SY"]
    assert [e.entity.id for e in found.entities] == ["un", "bashar-assad"]
    # حلب three times in the body (3) loses to حمص in the headline (3) and once more (1).
    assert found.primary_place.place.name == "حمص"


def test_a_users_file_extends_the_gazetteers(tmp_path: Path) -> None:
    places = tmp_path / "places.yaml"
    places.write_text(
        "places:\n  - {id: 'rasd:camp-x', name: مخيم الأمل الجديد, kind: camp, country: SY, "
        "lat: 35.1, lon: 36.2}\n",
        encoding="utf-8",
    )
    entities = tmp_path / "entities.yaml"
    entities.write_text(
        "entities:\n  - {id: un, name: المنظمة الأممية, type: un_agency}\n"
        "  - {id: new-group, name: رابطة ذوي المفقودين, type: rights_group}\n",
        encoding="utf-8",
    )
    g = load_gazetteers([places], [entities], geonames=False)
    found = g.tag([TokenStream("نقل إلى مخيم الأمل الجديد، وقالت رابطة ذوي المفقودين", "body")])
    assert [h.place.id for h in found.places] == ["rasd:camp-x"]
    assert [e.entity.id for e in found.entities] == ["new-group"]
    # The user's entry replaced the shipped one of the same id.
    assert g.tag([TokenStream("المنظمة الأممية والأمم المتحدة", "body")]).entities[
        0
    ].entity.name == ("المنظمة الأممية")
    assert len(g.tag([TokenStream("الأمم المتحدة", "body")]).entities) == 0


def test_a_bad_file_names_itself(tmp_path: Path) -> None:
    bad = tmp_path / "places.yaml"
    bad.write_text("places:\n  - {id: x, name: مكان, country: syria}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"places\.yaml: places\.0\.country"):
        load_gazetteers([bad], geonames=False)


def test_enriched_articles_carry_places_with_points(gazetteers: Gazetteers) -> None:
    now = datetime(2026, 11, 20, tzinfo=UTC)
    article = Article(
        id="a", url="u", canonical_url="u", feed_url="f", outlet="o", feed_name="f",
        country="SY", language="ar", title="اعتقالات في حلب", first_seen=now,
        index_name="rasd-articles-2026.11", body="نقل المعتقلون إلى سجن صيدنايا.",
        fetched_at=now, http_status=200,
    )  # fmt: skip
    e = Enricher(None, gazetteers).enrich(article)
    assert [p.id for p in e.places] == ["geonames:170063", "rasd:prison-saydnaya"]
    assert e.places[0].location is not None and e.places[0].location.lat == pytest.approx(
        36.2, 0.01
    )
    assert e.primary_place is not None and e.primary_place.name == "حلب"
    # The document Elasticsearch gets has no version fields inside the places.
    assert "schema_version" not in json.loads(e.to_json())["places"][0]


def test_token_stream_is_the_tokenizer(gazetteers: Gazetteers) -> None:
    """The one-pass stream gives tokenize()'s tokens and spans on real and odd text."""
    rng = random.Random(5)
    pieces = [
        "قيصر",
        "حلب",
        "و",
        "-",
        " ",
        "  ",
        "،",
        ".",
        "«",
        "»",
        "|",
        "_",
        "\u200f",
        "abc",
        "١٢",
    ]
    pieces += ["\n", "--", "ﷺ", "İ", "مَدْرَسَة", "\ufef7"]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 20)))
        stream = TokenStream(text)
        ref = tokenize(text, fold_teh_marbuta=True)
        assert stream.tokens == [t.norm.replace(" ", "_") for t in ref], repr(text)
        assert [stream.span(i, i) for i in range(len(ref))] == [(t.start, t.end) for t in ref]


def test_migration_carries_old_keyword_places_over() -> None:
    old = {"id": "a", "places": ["حلب"], "entities": "الأمم المتحدة", "title": "t"}
    assert upgrade_source(old) == {
        "id": "a",
        "places": [{"name": "حلب"}],
        "entities": [{"name": "الأمم المتحدة"}],
        "title": "t",
    }
    new = {"places": [{"name": "حلب", "id": "geonames:170063"}], "entities": []}
    assert upgrade_source(new) is new


def test_rasd_enrich_prints_places_entities_and_dates() -> None:
    text = "نقل المعتقل أمس من حلب إلى سجن صيدنايا، وقالت الشبكة السورية لحقوق الإنسان."
    result = CliRunner().invoke(app, ["enrich", "--text", text, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["language"] == "ar"
    assert [p["id"] for p in report["places"]] == ["geonames:170063", "rasd:prison-saydnaya"]
    assert report["places"][0]["location"] == {"lat": 36.20124, "lon": 37.16117}
    assert report["entities"] == [
        {"name": "الشبكة السورية لحقوق الإنسان", "type": "rights_group", "id": "snhr"}
    ]
    assert len(report["dates"]) == 1  # أمس, the day before now
    both = CliRunner().invoke(app, ["enrich"])
    assert both.exit_code != 0 and "give a FILE or URL, or --text" in both.output
