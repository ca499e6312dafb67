#!/usr/bin/env python3
"""patron's default text model against TF-IDF + logistic regression on the same rows.

For each split seed: `patron train` of a config that sets only `data.*` (the text kind and
everything else left to the built-in defaults) with `split.seed=N` and `split.export`, then
TF-IDF (word 1-2-grams, or characters 1-2 with --chars for Chinese; min_df 2, sublinear tf)
+ logistic regression with C chosen on the same validation rows, fitted on the same train
rows. Prints each seed's test accuracy and the means. Usage:

    bench/compare_text.py --data datasets/uci_sentiment_labelled_sentences_3000.csv \\
        --text text --target label [--seeds 1,2,3,4,5] [--chars] [--set KEY=VALUE ...]

--regression compares a numeric target's test RMSE with TF-IDF (word 1-2-grams and
character 3-5-grams) + ridge (`reference_text_regression.py`) instead, e.g. VADER's
`mean_sentiment`, or one source's:
    --target mean_sentiment --regression --query "source == 'tweets'"

--query keeps the rows a pandas query selects and --sample N then draws N of them (seed 0),
written to a temporary CSV both sides read: the README's VADER sets are
    --query "label3 != 'neutral'" --sample 10000            (positive vs negative, 10,000)
    --query "source == 'movie_review_snippets' and label3 != 'neutral'"

Without --test-file the config holds out `split.test = 0.2`, which a config that sets only
`data.*` would not (a --set wins); with it, patron learns from every row of --data.

PATRON names the binary (default: the release build under CARGO_TARGET_DIR or target/).
Needs pandas and scikit-learn.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score

from compare_tabular import ROOT, patron_binary
from reference_text_regression import ridge


def reference(texts, y, part, chars: bool, test=None, refit=False) -> float:
    """TF-IDF + LR's test accuracy: on the split's test rows, or on `test` (texts, labels).
    With `refit`, C is chosen on the `valid` rows and the model refitted on `train` and
    `valid` together (a k-fold split: see `reference_part`)."""
    tr, va, te = part == "train", part == "valid", part == "test"
    def vectorizer():
        return TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True,
                               analyzer="char_wb" if chars else "word")
    vec = vectorizer()
    x_tr = vec.fit_transform(texts[tr])
    best = None
    for c in [0.5, 1, 2, 4, 8, 16]:
        model = LogisticRegression(C=c, max_iter=2000).fit(x_tr, y[tr])
        acc = accuracy_score(y[va], model.predict(vec.transform(texts[va])))
        if best is None or acc > best[0]:
            best = (acc, model, c)
    _, model, c = best
    if refit:
        fit = tr | va
        vec = vectorizer()
        model = LogisticRegression(C=c, max_iter=2000).fit(vec.fit_transform(texts[fit]), y[fit])
    test_texts, test_y = test if test is not None else (texts[te], y[te])
    return accuracy_score(test_y, model.predict(vec.transform(test_texts)))


def reference_part(split: pd.DataFrame):
    """The reference's rows from patron's exported split, and whether to refit. A k-fold
    run (`split.folds`) has no `valid` rows: the reference then chooses its strength on
    fold 1 (fitted on the other folds) and refits on every non-test row, all the rows the
    fold ensemble learned from."""
    part = split["split"].to_numpy().copy()
    if "fold" not in split.columns:
        return part, False
    part[split["fold"].to_numpy() == 1] = "valid"
    return part, True


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--text", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--seeds", default="1,2,3,4,5")
    p.add_argument("--chars", action="store_true", help="character n-grams for the reference")
    p.add_argument("--regression", action="store_true",
                   help="a numeric target: test RMSE against TF-IDF + ridge")
    p.add_argument("--set", action="append", default=[], help="extra patron --set overrides")
    p.add_argument("--query", help="keep the rows this pandas query selects")
    p.add_argument("--sample", type=int, help="then draw this many of them (seed 0)")
    p.add_argument("--test-file", help="a separate labelled file both are scored on (patron "
                   "through `predict`) instead of the test split, which then goes unused")
    args = p.parse_args()
    data = Path(args.data).resolve()
    with tempfile.TemporaryDirectory() as subset_dir:
        if args.query or args.sample:
            rows = pd.read_csv(data, keep_default_na=False)
            if args.query:
                rows = rows.query(args.query)
            if args.sample:
                rows = rows.sample(args.sample, random_state=0)
            data = Path(subset_dir) / data.name
            rows.to_csv(data, index=False)
        return compare(args, data)


def compare(args, data: Path) -> int:
    """Both sides on every seed of `data`; prints the table."""
    df = pd.read_csv(data)
    texts = df[args.text].astype(str).str.lower().to_numpy()
    y = df[args.target].to_numpy(dtype=float) if args.regression else \
        df[args.target].astype(str).to_numpy()
    if args.regression and args.test_file:
        print("--test-file is for classes; a regression compares on the test split", file=sys.stderr)
        return 2
    test = None
    if args.test_file:
        t = pd.read_csv(args.test_file)
        test = (t[args.text].astype(str).str.lower().to_numpy(),
                t[args.target].astype(str).to_numpy())
    rows = []
    metric, reference_name = ("rmse", "TF-IDF + ridge") if args.regression else \
        ("accuracy", "TF-IDF + LR")
    print(f"| data | seed | patron {metric} | {reference_name} |")
    print("|---|---|---|---|")
    for seed in [int(s) for s in args.seeds.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            config, split = Path(tmp) / "c.toml", Path(tmp) / "split.csv"
            config.write_text(
                f"[data]\npath = {json.dumps(str(data))}\ntext = {json.dumps(args.text)}\n"
                f"target = {json.dumps(args.target)}\n[split]\nseed = {seed}\n"
                f"export = {json.dumps(str(split))}\n"
                # Without a test file the comparison needs a test split, which a default
                # fold ensemble does not hold out (a --set of split.test wins).
                + ("" if test is not None else "test = 0.2\n"))
            cmd = [patron_binary(), "train", "--config", str(config), "--quiet",
                   "--output-dir", str(Path(tmp) / "run")]
            for s in args.set:
                cmd += ["--set", s]
            subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
            report = json.loads((Path(tmp) / "run" / "report.json").read_text())
            part, refit = reference_part(pd.read_csv(split))
            score = report["metrics"][metric]
            if test is not None:
                out = Path(tmp) / "scored.csv"
                subprocess.run([patron_binary(), "predict", "--checkpoint", str(Path(tmp) / "run"),
                                "--input", args.test_file, "--output", str(out)],
                               cwd=ROOT, check=True, capture_output=True)
                predicted = pd.read_csv(out, keep_default_na=False)["prediction"].astype(str)
                score = float((predicted.to_numpy() == test[1]).mean())
            if args.regression:
                row = (score, ridge(texts, y, part, refit)["rmse"])
            else:
                row = (score, reference(texts, y, part, args.chars, test, refit))
            rows.append(row)
            print(f"| {data.stem} | {seed} | {row[0]:.4f} | {row[1]:.4f} |", flush=True)
    means = [sum(r[i] for r in rows) / len(rows) for i in range(2)]
    print(f"| {data.stem} | mean | **{means[0]:.4f}** | **{means[1]:.4f}** |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
