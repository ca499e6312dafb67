#!/usr/bin/env python3
"""The regression references on exactly patron's rows: the mean, ridge, LightGBM with a
squared-error loss and LightGBM with a Tweedie loss.

`--write-split OUT.csv` first writes a copy of the data with a `split` column
(`train`/`valid`/`test`) that patron reads through `split.column`: the test rows are the
issue's peer split (scikit-learn's stratified 80/20 split on `--stratify`, seed 42), and an
eighth of the rest (a tenth of all rows, stratified the same way) is the validation split
both patron and LightGBM early-stop on. Then every reference is fitted on the train rows
and one JSON line gives each one's test RMSE, MAE, R^2 and top-10 % share of the total.
Needs pandas, scikit-learn and lightgbm (PyPI).
"""

import argparse
import json
import sys

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler


def metrics(pred: np.ndarray, y: np.ndarray) -> dict:
    err = pred - y
    rmse = float(np.sqrt(np.mean(err**2)))
    order = np.argsort(-pred, kind="stable")
    top = order[: len(y) // 10]
    return {
        "rmse": rmse,
        "mae": float(np.mean(np.abs(err))),
        "r2": float(1.0 - np.sum(err**2) / np.sum((y - y.mean()) ** 2)),
        "top10_share": float(y[top].sum() / y.sum()),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--stratify", required=True, help="the column the split keeps balanced")
    p.add_argument("--write-split", required=True, help="the data with a split column")
    p.add_argument("--drop", default="", help="comma-separated columns left out")
    p.add_argument("--id", default="", help="an id column, left out")
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args()

    df = pd.read_csv(args.data, keep_default_na=True, dtype={args.id: str} if args.id else None)
    rows = np.arange(len(df))
    strata = df[args.stratify].astype(str)
    rest, test = train_test_split(
        rows, test_size=0.2, stratify=strata, random_state=args.seed
    )
    train, valid = train_test_split(
        rest, test_size=0.125, stratify=strata.iloc[rest], random_state=args.seed
    )
    part = np.array(["train"] * len(df), dtype=object)
    part[valid] = "valid"
    part[test] = "test"
    out = df.copy()
    out["split"] = part
    out.to_csv(args.write_split, index=False)

    y = df[args.target].to_numpy(dtype=float)
    drop = [c for c in args.drop.split(",") if c] + [c for c in [args.id] if c]
    x = df.drop(columns=[args.target] + drop)
    categorical = [c for c in x.columns if not pd.api.types.is_numeric_dtype(x[c])]
    for c in categorical:
        x[c] = x[c].astype("category")
    numeric = [c for c in x.columns if c not in categorical]
    tr, va, te = part == "train", part == "valid", part == "test"

    results = {"rows": {"train": int(tr.sum()), "valid": int(va.sum()), "test": int(te.sum())}}
    results["mean"] = metrics(np.full(te.sum(), y[tr].mean()), y[te])

    # Ridge on standardized numbers (medians for blanks, one-hot categories).
    x_r = pd.get_dummies(x, columns=categorical, dtype=float)
    for c in numeric:
        x_r[c] = x_r[c].fillna(x_r.loc[tr, c].median())
    scaler = StandardScaler().fit(x_r[tr])
    ridge = Ridge(alpha=1.0).fit(scaler.transform(x_r[tr]), y[tr])
    results["ridge"] = metrics(ridge.predict(scaler.transform(x_r[te])), y[te])

    for name, objective in [("lightgbm_mse", "regression"), ("lightgbm_tweedie", "tweedie")]:
        model = lgb.LGBMRegressor(
            objective=objective,
            n_estimators=2000,
            learning_rate=0.05,
            random_state=args.seed,
            verbose=-1,
        )
        model.fit(
            x[tr],
            y[tr],
            eval_X=(x[va],),
            eval_y=(y[va],),
            eval_metric="rmse",
            callbacks=[lgb.early_stopping(100, first_metric_only=True, verbose=False)],
        )
        results[name] = metrics(model.predict(x[te]), y[te])
        results[name]["trees"] = int(model.best_iteration_ or model.n_estimators)
    json.dump(results, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
