#!/usr/bin/env python3
"""The tabular references on exactly patron's rows: LightGBM and logistic regression
(`--regression`: LightGBM with a squared-error loss and ridge regression; `--multiclass`:
LightGBM's multiclass objective and multinomial logistic regression).

Reads a data CSV and the split a patron run drew (`split.export`, `row,split`), fits both
on the train rows (LightGBM early-stopped on the valid rows; on a k-fold split, one
LightGBM per fold early-stopped on it, their probabilities averaged, as patron does), and
prints one JSON line with each one's test ROC AUC and LightGBM's positives among the top-scored
fifth of the test rows (the CoIL 2000 challenge's measure: 800 of 4,000 customers); for a
multiclass target, each one's test accuracy, macro-F1 (of the most probable class) and log
loss. `bench/compare_tabular` runs it beside `patron train` over split seeds. Needs pandas,
scikit-learn and lightgbm (PyPI).
"""

import argparse
import json
import sys

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from compare_tabular import top_fifth_positives


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", required=True)
    p.add_argument("--split", required=True, help="patron's split.export CSV")
    p.add_argument("--target", required=True)
    p.add_argument("--positive", help="the positive class (a binary target)")
    p.add_argument("--regression", action="store_true",
                   help="a numeric target: ridge and LightGBM (squared error) instead, "
                   "each one's test RMSE and R^2")
    p.add_argument("--multiclass", action="store_true",
                   help="a target of more than two classes: each one's test accuracy, "
                   "macro-F1 and log loss")
    p.add_argument("--drop", default="", help="comma-separated columns left out")
    p.add_argument("--id", default="", help="an id column, left out")
    p.add_argument("--test-file", help="score this file's rows as the test rows instead of "
                   "the split's (which then stay unused, as patron's do)")
    args = p.parse_args()

    df = pd.read_csv(args.data, keep_default_na=True)
    split = pd.read_csv(args.split)
    # The export numbers the rows it split; rows without a label are not among them.
    numbered = split["row"].to_numpy()
    if len(numbered) == 0 or (np.diff(numbered) <= 0).any() or numbered[0] < 0 \
            or numbered[-1] >= len(df):
        print(f"{args.split} does not number {args.data}'s rows", file=sys.stderr)
        return 2
    df = df.iloc[numbered].reset_index(drop=True)
    split = split.reset_index(drop=True)
    if args.test_file:
        test = pd.read_csv(args.test_file, keep_default_na=True)
        df = pd.concat([df, test], ignore_index=True)
        split = pd.concat(
            [split.replace({"split": {"test": "unused"}}),
             pd.DataFrame({"row": np.arange(len(test)), "split": "test"})],
            ignore_index=True)
    if args.regression:
        y = df[args.target].to_numpy(dtype=float)
    elif args.multiclass:
        classes = sorted(df[args.target].dropna().astype(str).unique())
        # Rows without a label (-1) are in none of patron's splits.
        code = df[args.target].astype(str).map({c: i for i, c in enumerate(classes)})
        y = code.fillna(-1).astype(int).to_numpy()
    elif args.positive is not None:
        y = (df[args.target].astype(str) == args.positive).astype(int).to_numpy()
    else:
        print("give --positive or --regression", file=sys.stderr)
        return 2
    drop = [c for c in args.drop.split(",") if c] + [c for c in [args.id] if c]
    x = df.drop(columns=[args.target] + drop)
    categorical = [c for c in x.columns if not pd.api.types.is_numeric_dtype(x[c])]
    numeric = [c for c in x.columns if c not in categorical]
    part = split["split"].to_numpy()
    tr, va, te = (part == "train"), (part == "valid"), (part == "test")

    # The linear reference (logistic regression, or ridge on a number): standardized
    # numbers (medians for blanks), one-hot categories.
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
        Ridge(alpha=1.0) if args.regression else LogisticRegression(max_iter=2000, C=1.0),
    )
    lr.fit(x_lr[tr], y[tr])

    # LightGBM: its defaults, categories as categories, early stopping on the valid rows.
    x_gb = x.copy()
    for c in categorical:
        x_gb[c] = x_gb[c].astype("category")
    def lightgbm(fit_rows, stop_rows):
        kind = lgb.LGBMRegressor if args.regression else lgb.LGBMClassifier
        model = kind(n_estimators=2000, learning_rate=0.05, verbose=-1, random_state=0)
        model.fit(
            x_gb[fit_rows],
            y[fit_rows],
            eval_set=[(x_gb[stop_rows], y[stop_rows])],
            callbacks=[lgb.early_stopping(50, verbose=False)],
        )
        return model

    def score(model, rows):
        """A regressor's values, a classifier's positive-class probabilities (every class's
        on a multiclass target, one column per class)."""
        if args.regression:
            return model.predict(rows)
        probs = model.predict_proba(rows)
        if args.multiclass:
            full = np.zeros((len(rows), len(classes)))
            full[:, model.classes_] = probs
            return full
        return probs[:, 1]

    if "fold" in split.columns:
        # patron's k-fold split: as patron does, one model per fold, early-stopped on it,
        # their probabilities averaged.
        fold = split["fold"].to_numpy()
        models = [lightgbm(tr & (fold != k), tr & (fold == k)) for k in sorted(set(fold[tr]))]
        probs = np.mean([score(m, x_gb[te]) for m in models], axis=0)
        trees = int(np.mean([m.best_iteration_ or m.n_estimators for m in models]))
    else:
        model = lightgbm(tr, va)
        probs = score(model, x_gb[te])
        trees = int(model.best_iteration_ or model.n_estimators)
    rows = {"train": int(tr.sum()), "valid": int(va.sum()), "test": int(te.sum())}
    if args.regression:
        def rmse_r2(pred):
            err = pred - y[te]
            total = np.sum((y[te] - y[te].mean()) ** 2)
            return round(float(np.sqrt(np.mean(err**2))), 4), round(float(1 - np.sum(err**2) / total), 4)
        (gb_rmse, gb_r2), (ridge_rmse, ridge_r2) = rmse_r2(probs), rmse_r2(lr.predict(x_lr[te]))
        print(json.dumps({"lightgbm_rmse": gb_rmse, "lightgbm_r2": gb_r2, "ridge_rmse": ridge_rmse,
                          "ridge_r2": ridge_r2, "lightgbm_trees": trees, "rows": rows}))
        return 0
    if args.multiclass:
        def summary(p):
            pred = p.argmax(axis=1)
            return (round(float(accuracy_score(y[te], pred)), 4),
                    round(float(f1_score(y[te], pred, average="macro")), 4),
                    round(float(log_loss(y[te], np.clip(p, 1e-15, 1), labels=range(len(classes)))), 4))
        (gb_acc, gb_f1, gb_ll), (lr_acc, lr_f1, lr_ll) = summary(probs), summary(score(lr, x_lr[te]))
        print(json.dumps({"lightgbm_accuracy": gb_acc, "lightgbm_macro_f1": gb_f1,
                          "lightgbm_log_loss": gb_ll, "logreg_accuracy": lr_acc,
                          "logreg_macro_f1": lr_f1, "logreg_log_loss": lr_ll,
                          "lightgbm_trees": trees, "rows": rows}))
        return 0
    lr_auc = roc_auc_score(y[te], lr.predict_proba(x_lr[te])[:, 1])
    gb_auc = roc_auc_score(y[te], probs)
    print(
        json.dumps(
            {
                "lightgbm_auc": round(float(gb_auc), 4),
                "logreg_auc": round(float(lr_auc), 4),
                "lightgbm_top_fifth_positives": top_fifth_positives(probs, y[te]),
                "lightgbm_trees": trees,
                "rows": rows,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
