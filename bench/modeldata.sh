#!/usr/bin/env bash
# Writes real customer tables and product reviews from the R package modeldata (MIT; the
# Debian package r-cran-modeldata) as CSV files into DIR (default /tmp/modeldata), for
# checking the built-in defaults on data the project does not ship (README, "Results"):
#   bench/compare_tabular.py DIR/mlc_churn.toml DIR/credit.toml DIR/lending.toml \
#       DIR/attrition.toml DIR/stackoverflow.toml
#   bench/compare_text.py --data DIR/fine_foods_5000.csv --text review --target score
# Needs root for apt-get (R and the package, about 100 MB).
set -euo pipefail
dir="$(realpath -m "${1:-/tmp/modeldata}")"
mkdir -p "$dir"
source "$(dirname "$0")/r_package.sh"
need_r_package modeldata
Rscript - "$dir" <<'R'
library(modeldata)
dir <- commandArgs(trailingOnly = TRUE)[1]
out <- function(x, name) write.csv(x, file.path(dir, name), row.names = FALSE)
data(mlc_churn); out(mlc_churn, "mlc_churn.csv")
data(credit_data); out(credit_data, "credit_data.csv")
data(lending_club); out(lending_club, "lending_club.csv")
data(attrition); out(attrition, "attrition.csv")
data(stackoverflow); out(stackoverflow, "stackoverflow.csv")
# 4,000 + 1,000 Amazon fine-food reviews, `score` great (5 stars) or other.
data(small_fine_foods); out(rbind(training_data, testing_data), "fine_foods_5000.csv")
# Chicago L ridership by day (regression, a `date` column: README, "What a run does").
data(Chicago); out(Chicago, "chicago.csv")
R
# Configs that set only `data.*`: the built-in defaults, as a new user would run them.
config() {
  printf '[data]\npath = "%s"\ntarget = "%s"\npositive = "%s"\n' "$dir/$2" "$3" "$4" >"$dir/$1.toml"
}
config mlc_churn mlc_churn.csv churn yes
config credit credit_data.csv Status bad
config lending lending_club.csv Class bad
config attrition attrition.csv Attrition Yes
config stackoverflow stackoverflow.csv Remote Remote
printf '[data]\npath = "%s"\ntarget = "ridership"\n' "$dir/chicago.csv" >"$dir/chicago.toml"
echo "written to $dir"
