#!/usr/bin/env bash
# Writes real customer tables and product reviews from the R package modeldata (MIT; the
# Debian package r-cran-modeldata) as CSV files into DIR (default /tmp/modeldata), for
# checking the built-in defaults on data the project does not ship (README, "Results"):
#   bench/compare_tabular.py DIR/mlc_churn.toml DIR/credit.toml DIR/lending.toml \
#       DIR/attrition.toml DIR/stackoverflow.toml
#   bench/compare_text.py --data DIR/fine_foods_5000.csv --text review --target score
#   bench/compare_tabular.py DIR/concrete.toml DIR/car_prices.toml DIR/sacramento.toml \
#       DIR/ames.toml DIR/chicago.toml DIR/cdnow_spend.toml     (regression)
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
# More regression tables for the defaults of a numeric target (README, "Regression").
data(ames); out(ames, "ames.csv")
data(car_prices); out(car_prices, "car_prices.csv")
data(Sacramento); out(Sacramento, "sacramento.csv")
data(concrete); out(concrete, "concrete.csv")
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
regression() {
  printf '[data]\npath = "%s"\ntarget = "%s"\n' "$dir/$2" "$3" >"$dir/$1.toml"
}
regression chicago chicago.csv ridership
regression ames ames.csv Sale_Price
regression car_prices car_prices.csv Price
regression sacramento sacramento.csv price
regression concrete concrete.csv compressive_strength
# The shipped CDNOW spend with only data.* set (the shipped config's Tweedie loss left out).
root="$(realpath "$(dirname "$0")/..")"
printf '[data]\npath = "%s"\ntarget = "future_spend"\nid = "customer_id"\ndrop = ["future_purchases", "bought_again"]\n' \
  "$root/datasets/cdnow_customer_value_23570.csv" >"$dir/cdnow_spend.toml"
echo "written to $dir"
