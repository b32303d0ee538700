"""Reply drafts on the shipped sample: how often a draft is offered, and how often the VOC it
comes from was handled by the same department (docs/model-quality.md, "Reply drafts").

The registration-time tagger (title + request, what ``voc serve`` answers a new VOC with) is
trained as ``voc train`` trains it (``voc.tagger.train_tagger``, kind ``linear``, the fixed 20 %
held-out split); each held-out VOC gets the most similar replied training VOC
(``voc.replies.tagger_reply_suggestions`` at threshold 0). Per similarity threshold: the share of
held-out VOCs offered a draft (coverage) and the share of offers whose source VOC has the same
reviewed subject (``major>minor``) as the new one (a proxy for "the same department would answer
it this way").

Usage::

    python benchmarks/reply_drafts.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np
import polars as pl

from voc.replies import tagger_reply_suggestions
from voc.schema import validate_voc_frame
from voc.tagger import frame_texts, labels_of, resolve_taxonomy, train_tagger
from voc.taxonomy import default_taxonomy
from voc.tokenize import KiwiTokenizer

SAMPLE = ROOT / "voc" / "datasets" / "incheon_junggu_minwon" / "voc.csv"
THRESHOLDS = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    df = validate_voc_frame(pl.read_csv(SAMPLE, infer_schema=False))
    tok = KiwiTokenizer()
    taxonomy, _ = resolve_taxonomy(default_taxonomy(), df, tokenizer=tok, use_reply=False)
    tagger, report = train_tagger(df, taxonomy, kind="linear", version="bench", use_reply=False, tokenizer=tok)
    hold_ids = set(report.holdout_ids["subject"])
    rows = [i for i, v in enumerate(df["voc_id"].to_list()) if v in hold_ids]
    held = df[rows]
    texts, _ = frame_texts(held, use_reply=False)
    truth = labels_of(held, "subject")
    sugg = tagger_reply_suggestions(tagger, texts, ids=held["voc_id"].to_list(), min_similarity=0.0, max_suggestions=1)
    best = [(s[0].similarity, s[0].subject) if s else (0.0, None) for s in sugg]
    out = {"n_holdout": len(rows), "n_pool": len(tagger.evidence_pool), "thresholds": []}
    for t in THRESHOLDS:
        offered = [(sim, subj, y) for (sim, subj), y in zip(best, truth) if subj is not None and sim >= t]
        same = sum(1 for _, subj, y in offered if y and subj and subj.split(">")[-1] == y.split(">")[-1])
        row = {"threshold": t, "coverage": round(len(offered) / max(len(rows), 1), 3),
               "same_subject": round(same / len(offered), 3) if offered else None, "offered": len(offered)}
        out["thresholds"].append(row)
        print(json.dumps(row))
    sims = np.array([b[0] for b in best])
    out["median_best_similarity"] = round(float(np.median(sims)), 3)
    print(f"{len(rows)} held-out VOCs, pool {out['n_pool']}; median best similarity {out['median_best_similarity']}")
    if args.json:
        args.json.write_text(json.dumps(out, ensure_ascii=False, indent=2), "utf-8")


if __name__ == "__main__":
    main()
