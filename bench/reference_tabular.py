#!/usr/bin/env python3
"""The tabular references on exactly patron's rows: LightGBM and logistic regression.

Reads a data CSV and the split a patron run drew (`split.export`, `row,split`), fits both
on the train rows (LightGBM early-stopped on the valid rows; on a k-fold split, one
LightGBM per fold early-stopped on it, their probabilities averaged, as patron does), and
prints one JSON line with each one's test ROC AUC and LightGBM's positives among the top-scored
fifth of the test rows (the CoIL 2000 challenge's measure: 800 of 4,000 customers). `bench/compare_tabular` runs it beside `patron train` over split
seeds. Needs pandas, scikit-learn and lightgbm (PyPI).
"""

import argparse
import json
import sys

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from compare_tabular import top_fifth_positives


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", required=True)
    p.add_argument("--split", required=True, help="patron's split.export CSV")
    p.add_argument("--target", required=True)
    p.add_argument("--positive", required=True)
    p.add_argument("--drop", default="", help="comma-separated columns left out")
    p.add_argument("--id", default="", help="an id column, left out")
    p.add_argument("--test-file", help="score this file's rows as the test rows instead of "
                   "the split's (which then stay unused, as patron's do)")
    args = p.parse_args()

    df = pd.read_csv(args.data, keep_default_na=True)
    split = pd.read_csv(args.split)
    if len(split) != len(df) or (split["row"].to_numpy() != np.arange(len(df))).any():
        print(f"{args.split} does not number {args.data}'s rows", file=sys.stderr)
        return 2
    if args.test_file:
        test = pd.read_csv(args.test_file, keep_default_na=True)
        df = pd.concat([df, test], ignore_index=True)
        split = pd.concat(
            [split.replace({"split": {"test": "unused"}}),
             pd.DataFrame({"row": np.arange(len(test)), "split": "test"})],
            ignore_index=True)
    y = (df[args.target].astype(str) == args.positive).astype(int).to_numpy()
    drop = [c for c in args.drop.split(",") if c] + [c for c in [args.id] if c]
    x = df.drop(columns=[args.target] + drop)
    categorical = [c for c in x.columns if not pd.api.types.is_numeric_dtype(x[c])]
    numeric = [c for c in x.columns if c not in categorical]
    part = split["split"].to_numpy()
    tr, va, te = (part == "train"), (part == "valid"), (part == "test")

    # Logistic regression: standardized numbers (medians for blanks), one-hot categories.
    x_lr = x.copy()
    for c in numeric:
        x_lr[c] = x_lr[c].fillna(x_lr.loc[tr, c].median())
    for c in categorical:
        x_lr[c] = x_lr[c].astype(str)
    lr = make_pipeline(
        ColumnTransformer(
            [
                ("num", StandardScaler(), numeric),
                ("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
            ]
        ),
        LogisticRegression(max_iter=2000, C=1.0),
    )
    lr.fit(x_lr[tr], y[tr])
    lr_auc = roc_auc_score(y[te], lr.predict_proba(x_lr[te])[:, 1])

    # LightGBM: its defaults, categories as categories, early stopping on the valid rows.
    x_gb = x.copy()
    for c in categorical:
        x_gb[c] = x_gb[c].astype("category")
    def lightgbm(fit_rows, stop_rows):
        model = lgb.LGBMClassifier(n_estimators=2000, learning_rate=0.05, verbose=-1, random_state=0)
        model.fit(
            x_gb[fit_rows],
            y[fit_rows],
            eval_set=[(x_gb[stop_rows], y[stop_rows])],
            callbacks=[lgb.early_stopping(50, verbose=False)],
        )
        return model

    if "fold" in split.columns:
        # patron's k-fold split: as patron does, one model per fold, early-stopped on it,
        # their probabilities averaged.
        fold = split["fold"].to_numpy()
        models = [lightgbm(tr & (fold != k), tr & (fold == k)) for k in sorted(set(fold[tr]))]
        probs = np.mean([m.predict_proba(x_gb[te])[:, 1] for m in models], axis=0)
        trees = int(np.mean([m.best_iteration_ or m.n_estimators for m in models]))
    else:
        model = lightgbm(tr, va)
        probs = model.predict_proba(x_gb[te])[:, 1]
        trees = int(model.best_iteration_ or model.n_estimators)
    gb_auc = roc_auc_score(y[te], probs)
    print(
        json.dumps(
            {
                "lightgbm_auc": round(float(gb_auc), 4),
                "logreg_auc": round(float(lr_auc), 4),
                "lightgbm_top_fifth_positives": top_fifth_positives(probs, y[te]),
                "lightgbm_trees": trees,
                "rows": {"train": int(tr.sum()), "valid": int(va.sum()), "test": int(te.sum())},
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
