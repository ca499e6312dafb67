#!/usr/bin/env python3
"""The text regression reference on exactly patron's rows: TF-IDF + ridge regression.

Reads a data CSV and the split a patron run drew (`split.export`, `row,split`), fits
TF-IDF (word 1-2-grams and character 3-5-grams, sublinear) + ridge on the train rows with
the ridge strength chosen on the valid rows, and prints one JSON line with the test RMSE,
MAE and R^2. Needs pandas and scikit-learn (PyPI).
"""

import argparse
import json
import sys

import numpy as np
import pandas as pd
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge


def ridge(texts, y, part, refit=False) -> dict:
    """TF-IDF + ridge fitted on the `train` rows of `part`, its strength chosen on the
    `valid` rows (with `refit`, then fitted again on both): the alpha and the test rows'
    RMSE, MAE and R^2."""
    tr, va, te = part == "train", part == "valid", part == "test"
    words = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=2, sublinear_tf=True)
    x_tr = hstack([words.fit_transform(texts[tr]), chars.fit_transform(texts[tr])]).tocsr()
    x = hstack([words.transform(texts), chars.transform(texts)]).tocsr()
    best = None
    for alpha in [0.3, 1.0, 3.0, 10.0]:
        model = Ridge(alpha=alpha).fit(x_tr, y[tr])
        rmse = float(np.sqrt(np.mean((model.predict(x[va]) - y[va]) ** 2)))
        if best is None or rmse < best[0]:
            best = (rmse, alpha, model)
    _, alpha, model = best
    if refit:
        fit = tr | va
        words.fit(texts[fit])
        chars.fit(texts[fit])
        x = hstack([words.transform(texts), chars.transform(texts)]).tocsr()
        model = Ridge(alpha=alpha).fit(x[fit], y[fit])
    err = model.predict(x[te]) - y[te]
    return {
        "alpha": alpha,
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "r2": float(1 - np.sum(err**2) / np.sum((y[te] - y[te].mean()) ** 2)),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", required=True)
    p.add_argument("--split", required=True, help="patron's split.export CSV")
    p.add_argument("--target", required=True)
    p.add_argument("--text", required=True)
    args = p.parse_args()

    df = pd.read_csv(args.data, keep_default_na=False)
    split = pd.read_csv(args.split)
    if len(split) != len(df) or (split["row"].to_numpy() != np.arange(len(df))).any():
        print(f"{args.split} does not number {args.data}'s rows", file=sys.stderr)
        return 2
    texts = df[args.text].astype(str).str.lower()
    y = df[args.target].to_numpy(dtype=float)
    print(json.dumps(ridge(texts, y, split["split"].to_numpy())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
