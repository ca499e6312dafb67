#!/usr/bin/env python3
"""The pretrained-encoder reference on exactly patron's rows: PyTorch + transformers
fine-tuning the same model with patron's text_encoder recipe, and TF-IDF + logistic
regression beside it.

Reads a data CSV and the split a patron run drew (`split.export`, `row,split`), fine-tunes
`--model` (a Hugging Face directory, e.g. models/all-MiniLM-L6-v2) as
BertForSequenceClassification: 3 epochs, AdamW lr 5e-5, weight decay 0.01, batch 32,
max length 128, 10 % linear warmup then linear decay to zero, dropout from config.json,
the epoch with the best validation macro-F1 kept; on the same threads as patron
(`--threads`). Prints one JSON line: test accuracy and macro-F1 of both models, seconds
per epoch and non-padding training tokens per second. Needs torch, transformers, pandas
and scikit-learn (PyPI).
"""

import argparse
import json
import math
import sys
import time

import numpy as np
import pandas as pd
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from tokenizers import Tokenizer
from transformers import BertForSequenceClassification, get_linear_schedule_with_warmup


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", required=True)
    p.add_argument("--split", required=True, help="patron's split.export CSV")
    p.add_argument("--target", required=True)
    p.add_argument("--text", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--extra-test",
        help="a CSV with the same text and target columns, never trained on: both models "
        "are scored on it too (a review set the model has not seen)",
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    df = pd.read_csv(args.data, keep_default_na=False)
    split = pd.read_csv(args.split)
    if len(split) != len(df) or (split["row"].to_numpy() != np.arange(len(df))).any():
        print(f"{args.split} does not number {args.data}'s rows", file=sys.stderr)
        return 2
    part = split["split"].to_numpy()
    tr, va, te = part == "train", part == "valid", part == "test"
    texts = df[args.text].astype(str).to_numpy()
    labels = sorted(set(df[args.target].astype(str)))
    y = np.array([labels.index(v) for v in df[args.target].astype(str)])

    # TF-IDF + logistic regression, C chosen on the valid rows.
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    x_tr = vec.fit_transform(np.char.lower(texts[tr].astype(str)))
    best = None
    for c in [0.5, 1, 2, 4, 8, 16]:
        lr = LogisticRegression(C=c, max_iter=2000).fit(x_tr, y[tr])
        f1 = f1_score(y[va], lr.predict(vec.transform(np.char.lower(texts[va].astype(str)))), average="macro")
        if best is None or f1 > best[0]:
            best = (f1, lr)
    lr_pred = best[1].predict(vec.transform(np.char.lower(texts[te].astype(str))))

    tok = Tokenizer.from_file(f"{args.model}/tokenizer.json")
    tok.no_padding()
    tok.enable_truncation(128)
    ids = [tok.encode(t).ids for t in texts]
    model = BertForSequenceClassification.from_pretrained(args.model, num_labels=len(labels))

    def batches(rows, shuffle, rng):
        rows = np.array(rows)
        if shuffle:
            rng.shuffle(rows)
        for i in range(0, len(rows), 32):
            chunk = rows[i : i + 32]
            longest = max(len(ids[r]) for r in chunk)
            x = torch.tensor([ids[r] + [0] * (longest - len(ids[r])) for r in chunk])
            yield chunk, x, (x != 0).long()

    def predict(rows):
        model.eval()
        out = np.zeros(len(rows), dtype=int)
        pos = {r: i for i, r in enumerate(rows)}
        with torch.no_grad():
            for chunk, x, mask in batches(rows, False, None):
                logits = model(input_ids=x, attention_mask=mask).logits
                for r, p_ in zip(chunk, logits.argmax(1).tolist()):
                    out[pos[r]] = p_
        return out

    train_rows = np.flatnonzero(tr)
    steps = args.epochs * math.ceil(len(train_rows) / 32)
    no_decay = ["bias", "LayerNorm.weight"]
    groups = [
        {"params": [p_ for n, p_ in model.named_parameters() if not any(k in n for k in no_decay)], "weight_decay": 0.01},
        {"params": [p_ for n, p_ in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    optim = torch.optim.AdamW(groups, lr=5e-5)
    sched = get_linear_schedule_with_warmup(optim, int(0.1 * steps), steps)
    rng = np.random.default_rng(args.seed)
    best_f1, best_state, seconds, tokens = -1.0, None, [], 0
    for _ in range(args.epochs):
        model.train()
        start = time.perf_counter()
        for chunk, x, mask in batches(train_rows, True, rng):
            loss = model(input_ids=x, attention_mask=mask, labels=torch.tensor(y[chunk])).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optim.step()
            sched.step()
            optim.zero_grad()
            tokens += int(mask.sum())
        seconds.append(time.perf_counter() - start)
        f1 = f1_score(y[va], predict(np.flatnonzero(va)), average="macro")
        if f1 > best_f1:
            best_f1 = f1
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    pred = predict(np.flatnonzero(te))
    extra = {}
    if args.extra_test:
        ex = pd.read_csv(args.extra_test, keep_default_na=False)
        ex_texts = ex[args.text].astype(str).to_numpy()
        ex_y = np.array([labels.index(v) for v in ex[args.target].astype(str)])
        base = len(ids)
        ids.extend(tok.encode(t).ids for t in ex_texts)
        ex_pred = predict(np.arange(base, base + len(ex_texts)))
        ex_lr = best[1].predict(vec.transform(np.char.lower(ex_texts.astype(str))))
        extra = {"extra_test": {
            "file": args.extra_test,
            "rows": len(ex_texts),
            "torch_accuracy": round(accuracy_score(ex_y, ex_pred), 4),
            "torch_macro_f1": round(f1_score(ex_y, ex_pred, average="macro"), 4),
            "tfidf_lr_accuracy": round(accuracy_score(ex_y, ex_lr), 4),
            "tfidf_lr_macro_f1": round(f1_score(ex_y, ex_lr, average="macro"), 4),
        }}
    print(json.dumps({
        "rows": {"train": int(tr.sum()), "valid": int(va.sum()), "test": int(te.sum())},
        "torch_accuracy": round(accuracy_score(y[te], pred), 4),
        "torch_macro_f1": round(f1_score(y[te], pred, average="macro"), 4),
        "tfidf_lr_accuracy": round(accuracy_score(y[te], lr_pred), 4),
        "tfidf_lr_macro_f1": round(f1_score(y[te], lr_pred, average="macro"), 4),
        "seconds_per_epoch": round(sum(seconds) / len(seconds), 1),
        "train_tokens_per_s": round(tokens / sum(seconds)),
        "threads": args.threads,
        **extra,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
