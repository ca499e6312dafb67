#!/usr/bin/env python3
"""Scoring speed of the pretrained-encoder reference: PyTorch + transformers scoring the
texts of a CSV column with a BertForSequenceClassification (a Hugging Face directory,
e.g. one `patron export --format hf` wrote), in batches of 32 padded to their longest
text, truncated at 128 tokens, on `--threads` threads, under torch.inference_mode.

    python3 bench/reference_encoder_score.py --data FILE.csv --text text --model DIR

Prints one JSON line: texts, seconds of the scoring loop (model loading excluded), texts
per second, and non-padding tokens per second. Needs torch, transformers and pandas.
"""

import argparse
import json
import time

import pandas as pd
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", required=True)
    p.add_argument("--text", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    texts = pd.read_csv(args.data, keep_default_na=False)[args.text].astype(str).tolist()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(args.model)
    model.eval()
    best, tokens = None, 0
    for _ in range(args.rounds):
        started = time.perf_counter()
        tokens = 0
        with torch.inference_mode():
            for i in range(0, len(texts), args.batch):
                batch = tokenizer(
                    texts[i : i + args.batch],
                    padding=True,
                    truncation=True,
                    max_length=128,
                    return_tensors="pt",
                )
                tokens += int(batch["attention_mask"].sum())
                model(**batch)
        seconds = time.perf_counter() - started
        best = seconds if best is None else min(best, seconds)
    print(json.dumps({
        "texts": len(texts),
        "seconds": round(best, 3),
        "texts_per_s": round(len(texts) / best, 1),
        "tokens_per_s": round(tokens / best),
        "threads": args.threads,
        "batch": args.batch,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
