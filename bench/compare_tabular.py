#!/usr/bin/env python3
"""patron against LightGBM and logistic regression on the same rows, over split seeds.

For each config and seed: `patron train --set split.seed=N --set split.export=...`, then
`bench/reference_tabular.py` on the rows that run drew; prints a markdown table with the
test ROC AUC of each and the means, and patron's and LightGBM's positives among the top-scored
fifth of the test rows; for a regression run (a numeric target), the test RMSE and R^2 of
patron, LightGBM (squared error) and ridge regression; for a multiclass run, the test
accuracy, macro-F1 and log loss of each (patron's classes at its decision rule, the
references' most probable class). Usage:

    bench/compare_tabular.py configs/bank_propensity.toml configs/telco_churn.toml [--seeds 1,2,3,4,5]

Without --test-file each run holds out `split.test = 0.2` unless its config sets
`split.test` (a --set still wins), as a config that sets only `data.*` holds out none.

PATRON names the binary (default: the release build under CARGO_TARGET_DIR or target/).
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The test share of the split protocol (patron's `split.test` before fold ensembles
# trained on every row by default).
TEST_SHARE = 0.2


def patron_binary() -> str:
    if os.environ.get("PATRON"):
        return os.environ["PATRON"]
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    return str(Path(target) / "release" / "patron")


def predict_file(run: Path, test_file: Path) -> Path:
    """`patron predict` of `run` on `test_file`; the predictions' path."""
    out = run.parent / "scored.csv"
    subprocess.run([patron_binary(), "predict", "--checkpoint", str(run), "--input",
                    str(test_file), "--output", str(out)], cwd=ROOT, check=True,
                   capture_output=True)
    return out


def scored_file(run: Path, test_file: Path, target: str, positive: str):
    """ROC AUC and top-fifth positives of `patron predict` on a separate labelled file."""
    from sklearn.metrics import roc_auc_score

    out = predict_file(run, test_file)
    with open(test_file, newline="") as f:
        labels = [int(r[target] == positive) for r in csv.DictReader(f)]
    with open(out, newline="") as f:
        scores = [float(r["score"]) for r in csv.DictReader(f)]
    return roc_auc_score(labels, scores), top_fifth_positives(scores, labels)


def scored_file_regression(run: Path, test_file: Path, target: str):
    """Test RMSE and R^2 of `patron predict` on a separate file with the numeric target."""
    out = predict_file(run, test_file)
    with open(test_file, newline="") as f:
        y = [float(r[target]) for r in csv.DictReader(f)]
    with open(out, newline="") as f:
        pred = [float(r["prediction"]) for r in csv.DictReader(f)]
    mean = sum(y) / len(y)
    sse = sum((p - t) ** 2 for p, t in zip(pred, y))
    return (sse / len(y)) ** 0.5, 1 - sse / sum((t - mean) ** 2 for t in y)


def top_fifth_positives(scores, labels) -> int:
    """Positives (labels 1) among the fifth of the rows with the highest scores; ties keep
    row order. `bench/reference_tabular.py` counts LightGBM's with it too."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    return sum(int(labels[i]) for i in order[: round(0.2 * len(scores))])


def run_top_fifth_positives(predictions: Path) -> int:
    """[`top_fifth_positives`] of a run's `test_predictions.csv`."""
    with predictions.open() as f:
        rows = [(float(r["logit"]), int(r["label"])) for r in csv.DictReader(f)]
    return top_fifth_positives([r[0] for r in rows], [r[1] for r in rows])


CLASSIFICATION_HEADER = (
    "| config | seed | patron | LightGBM | logistic regression | patron ECE (uncalibrated) "
    "| top fifth's positives, patron / LightGBM |\n|---|---|---|---|---|---|---|")
REGRESSION_HEADER = (
    "| config | seed | patron RMSE | LightGBM RMSE | ridge RMSE | R², patron / LightGBM / ridge |"
    "\n|---|---|---|---|---|---|")
MULTICLASS_HEADER = (
    "| config | seed | patron accuracy / macro-F1 / log loss | LightGBM | logistic regression |"
    "\n|---|---|---|---|---|")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("configs", nargs="+")
    p.add_argument("--seeds", default="1,2,3,4,5")
    p.add_argument("--backend", default="flex")
    p.add_argument("--set", action="append", default=[], help="extra patron --set overrides")
    p.add_argument("--test-file", help="a separate labelled file every model is scored on "
                   "(patron through `predict`) instead of a test split, as a user who trains "
                   "with the defaults and scores new customers (two-class and regression runs)")
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    header = None
    for config in args.configs:
        rows = []
        own_split = tomllib.loads(Path(config).read_text()).get("split", {})
        for seed in seeds:
            with tempfile.TemporaryDirectory() as tmp:
                run, split = Path(tmp) / "run", Path(tmp) / "split.csv"
                cmd = [patron_binary(), "train", "--config", config, "--backend", args.backend,
                       "--quiet", "--output-dir", str(run),
                       "--set", f"split.seed={seed}", "--set", f"split.export={split}"]
                # A fold ensemble by default holds out no test split; the comparison
                # needs one unless a test file judges.
                if not args.test_file and "test" not in own_split:
                    cmd += ["--set", f"split.test={TEST_SHARE}"]
                for s in args.set:
                    cmd += ["--set", s]
                subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                report = json.loads((run / "report.json").read_text())
                resolved = tomllib.loads((run / "config.toml").read_text())
                data = resolved["data"]
                task = report.get("task", "binary")
                if args.test_file and task == "multiclass":
                    sys.exit("--test-file scores binary and regression runs only")
                regression = task == "regression"
                if header != task:
                    header = task
                    print({"regression": REGRESSION_HEADER,
                           "multiclass": MULTICLASS_HEADER}.get(task, CLASSIFICATION_HEADER))
                target = {"regression": ["--regression"], "multiclass": ["--multiclass"]}.get(
                    task, ["--positive", report.get("positive", "")])
                extra = ["--test-file", str(Path(args.test_file).resolve())] if args.test_file else []
                ref = subprocess.run(
                    [sys.executable, str(ROOT / "bench" / "reference_tabular.py"),
                     "--data", str(ROOT / data["path"]), "--split", str(split),
                     "--target", data["target"], "--drop", ",".join(data.get("drop", [])),
                     "--id", data.get("id", "")] + target + extra,
                    cwd=ROOT, check=True, capture_output=True, text=True)
                ref = json.loads(ref.stdout.strip().splitlines()[-1])
                m = report["metrics"]
                if task == "multiclass":
                    row = tuple(src[f"{pre}{k}"] for src, pre in
                                ((m, ""), (ref, "lightgbm_"), (ref, "logreg_"))
                                for k in ("accuracy", "macro_f1", "log_loss"))
                    rows.append(row)
                    print(f"| {Path(config).stem} | {seed} | " + " | ".join(
                        " / ".join(f"{v:.4f}" for v in row[i:i + 3]) for i in (0, 3, 6)) + " |",
                        flush=True)
                    continue
                if regression:
                    rmse, r2 = (scored_file_regression(run, Path(args.test_file), data["target"])
                                if args.test_file else (m["rmse"], m["r2"]))
                    row = (rmse, ref["lightgbm_rmse"], ref["ridge_rmse"], r2,
                           ref["lightgbm_r2"], ref["ridge_r2"])
                    rows.append(row)
                    print(f"| {Path(config).stem} | {seed} | {row[0]:.4f} | {row[1]:.4f} | "
                          f"{row[2]:.4f} | {row[3]:.4f} / {row[4]:.4f} / {row[5]:.4f} |", flush=True)
                    continue
                positive = report["positive"]
                if args.test_file:
                    auc, top = scored_file(run, Path(args.test_file), data["target"], positive)
                else:
                    auc = m["auc_roc"]
                    top = run_top_fifth_positives(run / "test_predictions.csv")
                row = (auc, ref["lightgbm_auc"], ref["logreg_auc"], m["ece"],
                       m["ece_uncalibrated"], top, ref["lightgbm_top_fifth_positives"])
                rows.append(row)
                print(f"| {Path(config).stem} | {seed} | {row[0]:.4f} | {row[1]:.4f} | {row[2]:.4f} "
                      f"| {row[3]:.4f} ({row[4]:.4f}) | {row[5]} / {row[6]} |", flush=True)
        means = [sum(r[i] for r in rows) / len(rows) for i in range(len(rows[0]))]
        if header == "multiclass":
            print(f"| {Path(config).stem} | mean | " + " | ".join(
                " / ".join(f"**{v:.4f}**" for v in means[i:i + 3]) for i in (0, 3, 6)) + " |",
                flush=True)
            continue
        if header == "regression":
            print(f"| {Path(config).stem} | mean | **{means[0]:.4f}** | **{means[1]:.4f}** | "
                  f"**{means[2]:.4f}** | {means[3]:.4f} / {means[4]:.4f} / {means[5]:.4f} |",
                  flush=True)
            continue
        print(f"| {Path(config).stem} | mean | **{means[0]:.4f}** | **{means[1]:.4f}** | "
              f"**{means[2]:.4f}** | {means[3]:.4f} ({means[4]:.4f}) | {means[5]:.1f} / {means[6]:.1f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
