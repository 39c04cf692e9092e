"""Precision and recall of the near-duplicate verdict on the labelled pairs.

Reads ``tests/fixtures/dedupe/*.yaml`` and, for each threshold of a sweep,
prints the precision and recall of two verdicts:

* ``estimate``: the MinHash estimate alone (what ``rasd dedupe compare`` says);
* ``pipeline``: what the dedupe stage decides, through the LSH index: the first
  text of a pair is remembered, then the second is queried. A pair the LSH
  never offers as a candidate is a miss even if its estimate is high.

It also reads the hand-gold article bodies of ``../shared/corpus/articles`` in
place (never copied) and counts how many of their pairs, all different
stories, the pipeline would call near-duplicates. Run::

    .venv/bin/python bench/dedupe_eval.py [--threshold 0.15] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.neardup import (  # noqa: E402  (the repository root is put on sys.path first)
    NearDupConfig,
    NearDuplicateIndex,
    signature,
    words_of,
)
from tests.fixtures.dedupe.labelled import Pair, load_pairs  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "articles"
SWEEP = (0.05, 0.08, 0.1, 0.12, 0.15, 0.18, 0.2, 0.25, 0.3, 0.4, 0.5)
T0 = datetime(2025, 11, 1, tzinfo=UTC)


def pipeline_verdicts(pairs: list[Pair], config: NearDupConfig) -> list[bool]:
    """For each pair: does the LSH index, holding ``a``, return ``a`` for ``b``?"""
    out = []
    for pair in pairs:
        index = NearDuplicateIndex(config)
        sa = signature(words_of(pair.text_a), config)
        sb = signature(words_of(pair.text_b), config)
        if sa is None or sb is None:
            out.append(False)
            continue
        index.add("a", "a", sa, T0)
        match = index.query(sb)
        out.append(match is not None and match.article_id == "a")
    return out


def estimates(pairs: list[Pair], config: NearDupConfig) -> list[float]:
    out = []
    for pair in pairs:
        sa = signature(words_of(pair.text_a), config)
        sb = signature(words_of(pair.text_b), config)
        out.append(float(sa.jaccard(sb)) if sa is not None and sb is not None else 0.0)
    return out


def precision_recall(labels: list[bool], verdicts: list[bool]) -> tuple[float, float, int, int]:
    tp = sum(lab and v for lab, v in zip(labels, verdicts, strict=True))
    fp = sum(v and not lab for lab, v in zip(labels, verdicts, strict=True))
    fn = sum(lab and not v for lab, v in zip(labels, verdicts, strict=True))
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, fp, fn


def corpus_bodies() -> dict[str, str]:
    if not CORPUS.is_dir():
        return {}
    return {p.name.split(".")[0]: p.read_text(encoding="utf-8") for p in CORPUS.glob("*.gold.txt")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, default=NearDupConfig().threshold)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    pairs = load_pairs()
    labels = [p.near for p in pairs]
    base = NearDupConfig()
    est = estimates(pairs, base)

    rows = []
    for t in sorted({*SWEEP, args.threshold}):
        config = replace(base, threshold=t)
        p_est, r_est, _, _ = precision_recall(labels, [e >= t for e in est])
        p_pipe, r_pipe, fp, fn = precision_recall(labels, pipeline_verdicts(pairs, config))
        rows.append(
            {
                "threshold": t,
                "estimate_precision": round(p_est, 3),
                "estimate_recall": round(r_est, 3),
                "pipeline_precision": round(p_pipe, 3),
                "pipeline_recall": round(r_pipe, 3),
                "false_positives": fp,
                "false_negatives": fn,
            }
        )

    chosen = replace(base, threshold=args.threshold)
    verdicts = pipeline_verdicts(pairs, chosen)
    misses = [
        {"group": p.group, "a": p.a, "b": p.b, "label": "near" if p.near else "different",
         "estimate": round(e, 3), "why": p.why}
        for p, e, v in zip(pairs, est, verdicts, strict=True)
        if v != p.near
    ]  # fmt: skip
    p_c, r_c, _, _ = precision_recall(labels, verdicts)
    near_est = sorted(e for e, lab in zip(est, labels, strict=True) if lab)
    far_est = sorted(e for e, lab in zip(est, labels, strict=True) if not lab)

    bodies = corpus_bodies()
    corpus_pairs = list(itertools.combinations(sorted(bodies), 2))
    corpus_fp = sum(
        pipeline_verdicts(
            [Pair("corpus", a, b, bodies[a], bodies[b], False, "") for a, b in corpus_pairs],
            chosen,
        )
    )

    report = {
        "pairs": len(pairs),
        "near_pairs": sum(labels),
        "different_pairs": len(labels) - sum(labels),
        "config": {
            "shingle": base.shingle,
            "num_perm": base.num_perm,
            "lsh_threshold": base.lsh_threshold,
            "min_shingles": base.min_shingles,
        },
        "chosen_threshold": args.threshold,
        "precision": round(p_c, 3),
        "recall": round(r_c, 3),
        "lowest_near_estimate": round(near_est[0], 3),
        "highest_different_estimate": round(far_est[-1], 3),
        "sweep": rows,
        "errors_at_chosen": misses,
        "corpus_pairs_all_different": len(corpus_pairs),
        "corpus_false_positives": corpus_fp,
    }
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return
    print(
        f"labelled pairs: {report['pairs']} ({report['near_pairs']} near, "
        f"{report['different_pairs']} different); word {base.shingle}-shingles, "
        f"{base.num_perm} permutations, LSH threshold {base.lsh_threshold}"
    )
    print(
        f"MinHash estimate: lowest for a near pair {near_est[0]:.3f}, "
        f"highest for a different pair {far_est[-1]:.3f}"
    )
    header = ("threshold", "P(est)", "R(est)", "P(pipe)", "R(pipe)", "FP", "FN")
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, (9, 7, 7, 8, 8, 3, 3), strict=True)))
    for r in rows:
        print(
            f"{r['threshold']:>9.2f} {r['estimate_precision']:>7.3f} {r['estimate_recall']:>7.3f} "
            f"{r['pipeline_precision']:>8.3f} {r['pipeline_recall']:>8.3f} "
            f"{r['false_positives']:>3} {r['false_negatives']:>3}"
        )
    print(f"chosen threshold {args.threshold}: precision {p_c:.3f}, recall {r_c:.3f}")
    for m in misses:
        print(f"  wrong: {m}")
    if corpus_pairs:
        print(
            f"real pages in {CORPUS} (read in place): {corpus_fp} of {len(corpus_pairs)} pairs "
            "of different stories called near-duplicates"
        )


if __name__ == "__main__":
    main()
