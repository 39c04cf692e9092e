"""Near-duplicate dedupe: verdicts, clusters, restarts and the time window, with no network."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.dedupe import Deduper, InMemoryDedupeState, sign
from pipeline.models import Article, SignedArticle
from pipeline.neardup import (
    DatasketchIndex,
    NearDupConfig,
    NearDuplicateIndex,
    compare,
    decode_signature,
    encode_signature,
    signature,
    words_of,
)
from tests.fixtures.dedupe.labelled import HERE, load_group

from .helpers import SEEN, article

TEXTS, _ = load_group(HERE / "01-sednaya.yaml")
AGENCY, WIRE, REWRITE = TEXTS["agency"], TEXTS["wire_tv"], TEXTS["rewrite"]
OTHER = TEXTS["other_detainees"]


def at(a: Article, days: float) -> Article:
    return a.model_copy(update={"first_seen": SEEN + timedelta(days=days)})


def deduper(state: InMemoryDedupeState | None = None) -> Deduper:
    state = state if state is not None else InMemoryDedupeState()
    return Deduper(state, NearDuplicateIndex(NearDupConfig()))


def test_compare_gives_the_verdict_and_the_exact_jaccard() -> None:
    same = compare(AGENCY, WIRE)
    assert same.verdict == "near-duplicate"
    assert same.similarity >= same.threshold and 0 < same.jaccard < 1
    assert compare(AGENCY, OTHER).verdict == "different"
    assert compare(AGENCY, "بيان قصير").verdict == "too-short"


def test_spelling_noise_does_not_lower_similarity() -> None:
    # The shared canonical form: tashkeel, tatweel, hamza and ة/ه spellings fold.
    noisy = AGENCY.replace("أعلنت", "أَعلـنت").replace("اللجنة", "اللجنه").replace("إلى", "الى")
    assert compare(AGENCY, noisy).similarity == 1.0


def test_signature_survives_the_wire_format() -> None:
    config = NearDupConfig()
    sig = signature(words_of(AGENCY), config)
    assert sig is not None
    back = decode_signature(encode_signature(sig), config)
    assert back.jaccard(sig) == 1.0
    with pytest.raises(ValueError):
        decode_signature(encode_signature(sig), NearDupConfig(num_perm=64))


def test_a_syndicated_copy_joins_the_first_articles_cluster_and_is_marked() -> None:
    d = deduper()
    first = d.check(article("https://www.enabbaladi.net/1/", body=AGENCY))
    copy = d.check(article("https://www.syria.tv/node/2", body=WIRE))
    rewrite = d.check(article("https://www.alquds.co.uk/3/", body=REWRITE))
    other = d.check(article("https://www.aljazeera.net/news/4", body=OTHER))
    assert (first.is_duplicate, first.cluster_id) == (False, first.id)
    for v in (copy, rewrite):
        assert (v.is_duplicate, v.duplicate_kind, v.cluster_id) == (True, "near", first.id)
    assert copy.duplicate_of == first.id
    assert (other.is_duplicate, other.cluster_id) == (False, other.id)


def test_a_copy_of_a_copy_stays_in_the_first_cluster() -> None:
    d = deduper()
    first = d.check(article("https://a.example/1", body=AGENCY))
    d.check(article("https://b.example/2", body=WIRE))
    # Resembles the wire copy more than the agency text: the cluster is still the first's.
    third = d.check(article("https://c.example/3", body=WIRE + "\nنقلا عن قناة محلية."))
    assert third.cluster_id == first.id


def test_same_url_with_changed_text_keeps_id_cluster_and_verdict() -> None:
    d = deduper()
    first = d.check(article("https://a.example/1", body=AGENCY))
    copy = d.check(article("https://b.example/2", body=WIRE))
    updated = d.check(article("https://b.example/2/?utm_source=x", body=WIRE + "\nتحديث: ..."))
    assert updated.id == copy.id
    assert (updated.duplicate_kind, updated.cluster_id) == ("near", first.id)
    corrected = d.check(article("https://a.example/1", body=REWRITE))
    assert (corrected.id, corrected.is_duplicate, corrected.cluster_id) == (
        first.id,
        False,
        first.id,
    )


def test_a_restart_rebuilt_from_the_state_neither_forgets_nor_flags_again() -> None:
    state = InMemoryDedupeState()
    d = deduper(state)
    first = d.check(article("https://a.example/1", body=AGENCY))
    d.check(article("https://b.example/2", body=WIRE))

    # What KafkaDedupeState.load does: every stored entry goes through remember().
    fresh = deduper(InMemoryDedupeState())
    for (kind, key), entry in list(state._data.items()):
        fresh.state.put(kind, key, entry)
        fresh.remember(kind, key, entry)
    assert fresh.near is not None and first.id in fresh.near

    again = fresh.check(article("https://a.example/1", body=AGENCY))
    assert (again.is_duplicate, again.cluster_id) == (False, first.id)
    late = fresh.check(article("https://c.example/3", body=REWRITE))
    assert (late.duplicate_kind, late.cluster_id) == ("near", first.id)


def test_articles_older_than_the_window_are_forgotten() -> None:
    d = Deduper(InMemoryDedupeState(), NearDuplicateIndex(NearDupConfig(window=timedelta(days=2))))
    first = d.check(article("https://a.example/1", body=AGENCY))
    d.check(at(article("https://x.example/9", body=OTHER), 3))  # moves event time on
    assert d.near is not None and first.id not in d.near
    late = d.check(at(article("https://b.example/2", body=WIRE), 3))
    assert (late.is_duplicate, late.cluster_id) == (False, late.id)


def test_the_signed_message_decides_like_the_article() -> None:
    config = NearDupConfig()
    one, two = deduper(), deduper()
    for url, body in (("https://a.example/1", AGENCY), ("https://b.example/2", WIRE)):
        a = article(url, body=body)
        signed = SignedArticle.from_json(sign(a, config).to_json())
        assert one.check(a) == two.check(signed, two.keys_of(signed))


def test_a_short_body_is_never_clustered_by_similarity() -> None:
    d = deduper()
    d.check(article("https://a.example/1", body="اقرأ المزيد عن صيدنايا"))
    v = d.check(article("https://b.example/2", body="اقرأ المزيد عن صيدنايا اليوم"))
    assert (v.is_duplicate, v.cluster_id) == (False, v.id)


def test_the_best_match_wins_and_ties_go_to_the_earliest() -> None:
    config = NearDupConfig()
    index = NearDuplicateIndex(config)
    sig = signature(words_of(AGENCY), config)
    assert sig is not None
    index.add("later", "later", sig, SEEN + timedelta(hours=1))
    index.add("earlier", "earlier", sig, SEEN)
    match = index.query(sig)
    assert match is not None and (match.article_id, match.similarity) == ("earlier", 1.0)


def test_the_compare_command_prints_similarity_and_verdict(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from rasd.cli import app

    a, b, c = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "c.txt"
    a.write_text(AGENCY, encoding="utf-8")
    b.write_text(WIRE, encoding="utf-8")
    c.write_text(OTHER, encoding="utf-8")
    runner = CliRunner()
    same = runner.invoke(app, ["dedupe", "compare", str(a), str(b), "--json"])
    assert same.exit_code == 0, same.output
    data = json.loads(same.stdout)
    assert data["verdict"] == "near-duplicate" and data["similarity"] >= data["threshold"]
    text = runner.invoke(app, ["dedupe", "compare", str(a), str(c)])
    assert text.exit_code == 0 and "different" in text.stdout
    missing = runner.invoke(app, ["dedupe", "compare", str(a), str(tmp_path / "nope.txt")])
    assert missing.exit_code != 0


def test_a_corrupt_signature_is_a_permanent_error_for_the_dlq() -> None:
    from pipeline.errors import PermanentError

    signed = sign(article(body=AGENCY), NearDupConfig())
    bad = signed.model_copy(update={"minhash": "AAAA"})
    with pytest.raises(PermanentError) as err:
        deduper().keys_of(bad)
    assert err.value.reason == "undecodable"


def _bodies(n: int, seed: int) -> list[str]:
    """Articles drawn from the labelled texts' sentences: many share some text."""
    import random
    import re

    pool = sorted(
        {
            s.strip()
            for path in sorted(HERE.glob("*.yaml"))
            for text in load_group(path)[0].values()
            for s in re.split(r"[.\n،؟!]+", text)
            if len(s.split()) >= 5
        }
    )
    rng = random.Random(seed)
    return [". ".join(rng.sample(pool, rng.randint(4, 12))) for _ in range(n)]


def test_the_compact_index_answers_as_datasketch_does() -> None:
    # Small buffer and segments, so that sealing, merging and dropping all happen.
    class Small(NearDuplicateIndex):
        BUFFER = 16
        MAX_SEGMENT = 64

    config = NearDupConfig(window=timedelta(hours=30))
    compact, reference = Small(config), DatasketchIndex(config)
    answers = 0
    for i, body in enumerate(_bodies(400, seed=3)):
        sig = signature(words_of(body), config)
        assert sig is not None
        # Event time moves an hour per article, with some late arrivals.
        when = SEEN + timedelta(hours=i - (5 if i % 7 == 0 else 0))
        got, want = compact.query(sig), reference.query(sig)
        assert got == want, i
        answers += want is not None
        cluster = want.cluster_id if want is not None else f"c{i}"
        compact.add(f"a{i}", cluster, sig, when)
        reference.add(f"a{i}", cluster, sig, when)
        assert len(compact) == len(reference)
    assert answers > 50  # the texts overlap: many queries have an answer to agree on
    assert "a399" in compact and "a0" not in compact


def test_a_bulk_load_holds_what_adding_one_by_one_holds() -> None:
    import numpy as np

    config = NearDupConfig(window=timedelta(days=1))
    sigs = [signature(words_of(b), config) for b in _bodies(120, seed=5)]
    values = np.array([s.hashvalues for s in sigs if s is not None], dtype=np.uint32)
    ids = [f"a{i}" for i in range(len(values))]
    hours = [timedelta(hours=i // 2) for i in range(len(values))]
    micros = np.array([int((SEEN + h).timestamp() * 1_000_000) for h in hours])
    one, bulk = NearDuplicateIndex(config), NearDuplicateIndex(config)
    for key, row, h in zip(ids, values, hours, strict=True):
        one.add(key, key, row, SEEN + h)
    bulk.add_many(ids, ids, values, micros)
    assert len(one) == len(bulk) == 50  # hours 35 to 59, two an hour
    for row in values:
        assert one.query(row) == bulk.query(row)


def test_memory_follows_the_window() -> None:
    import numpy as np

    class Small(NearDuplicateIndex):
        BUFFER = 32
        MAX_SEGMENT = 256

    config = NearDupConfig(window=timedelta(hours=100))
    index = Small(config)
    rng = np.random.default_rng(1)
    sizes = []
    for hour in range(2_000):
        index.add(
            f"a{hour}",
            f"a{hour}",
            rng.integers(0, 2**32, 128, dtype=np.uint32),
            SEEN + timedelta(hours=hour),
        )
        sizes.append(index.nbytes)
    assert len(index) == 101
    # Held: the window plus at most the segments it straddles, not 2,000 articles.
    assert max(sizes[1_000:]) < 2 * max(sizes[:500])
