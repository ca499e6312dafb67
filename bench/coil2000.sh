#!/usr/bin/env bash
# Writes the CoIL Challenge 2000 caravan-insurance data as its two original parts into DIR
# (default /tmp/coil): coil_train.csv (5,822 customers, the file the project ships as
# datasets/caravan_insurance_coil2000_5822.csv) and coil_test.csv (the challenge's 4,000
# evaluation customers with their answers, 238 buyers), plus a config that sets only
# `data.*`, for the challenge's measure: train on the first, count the buyers among the 800
# top-scored of the second (README, "Results"):
#   bench/compare_tabular.py DIR/coil.toml --test-file DIR/coil_test.csv
# The 9,822 rows come from the R package kernlab's `ticdata` (the Debian package
# r-cran-kernlab; the data is UCI's "Insurance Company Benchmark (COIL 2000)", CC BY 4.0),
# which stores the codes as labelled factors and merged two customer subtypes of the same
# name (MOSTYPE 5 and 32); they are mapped back to the numeric codes of the shipped file,
# row by row on the training part, and 5 and 32 told apart by the main type (MOSHOOFD 1 or
# 7), which decides them on every training row. Needs root for apt-get, pandas.
set -euo pipefail
dir="$(realpath -m "${1:-/tmp/coil}")"
root="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$dir"
source "$(dirname "$0")/r_package.sh"
need_r_package kernlab
Rscript - "$dir" <<'R'
library(kernlab)
data(ticdata)
d <- ticdata
for (c in names(d)) if (is.factor(d[[c]])) d[[c]] <- as.integer(d[[c]])
write.csv(d, file.path(commandArgs(trailingOnly = TRUE)[1], "ticdata_codes.csv"), row.names = FALSE)
R
python3 - "$dir" "$root/datasets/caravan_insurance_coil2000_5822.csv" <<'PY'
import sys
import numpy as np
import pandas as pd

out_dir, shipped = sys.argv[1], sys.argv[2]
codes = pd.read_csv(f"{out_dir}/ticdata_codes.csv")
train = pd.read_csv(shipped)
codes.columns = train.columns
n = len(train)
assert len(codes) == n + 4000, len(codes)
out = codes.copy()
for col in train.columns[:-1]:
    pairs = pd.DataFrame({"k": codes[col].iloc[:n].to_numpy(), "v": train[col].to_numpy()})
    pairs = pairs.drop_duplicates()
    mapping = dict(zip(pairs["k"], pairs["v"]))
    if col == "MOSTYPE":
        out[col] = codes[col].map(mapping)
        merged = pairs["k"][pairs["k"].duplicated()].tolist()
        assert merged == [19], merged
        both = codes[col] == 19
        out.loc[both, col] = np.where(codes.loc[both, "MOSHOOFD"].map(
            dict(zip(codes["MOSHOOFD"].iloc[:n], train["MOSHOOFD"]))) == 1, 5, 32)
        continue
    assert not pairs["k"].duplicated().any(), col
    unseen = set(codes[col].iloc[n:]) - set(mapping)
    if unseen:
        # A code only the test part has: the column's one offset (factor level - 1).
        (offset,) = set(pairs["v"] - pairs["k"])
        mapping.update({u: u + offset for u in unseen})
    out[col] = codes[col].map(mapping)
out[train.columns[-1]] = np.where(codes[train.columns[-1]] == 2, "Yes", "No")
assert (out.iloc[:n].reset_index(drop=True) == train).all().all(), "training part differs"
assert not out.isna().any().any()
train.to_csv(f"{out_dir}/coil_train.csv", index=False)
out.iloc[n:].to_csv(f"{out_dir}/coil_test.csv", index=False)
print(f"test part: {(out.iloc[n:][train.columns[-1]] == 'Yes').sum()} buyers of 4000")
PY
rm "$dir/ticdata_codes.csv"
printf '[data]\npath = "%s"\ntarget = "Purchase"\npositive = "Yes"\n' "$dir/coil_train.csv" >"$dir/coil.toml"
echo "written to $dir"
