#!/usr/bin/env bash
# Writes multiclass tables as CSV files and configs that set only `data.*` into DIR (default
# /tmp/multiclass), for checking the built-in defaults on targets of more than two classes
# (README, "Multiclass tables"). From the Debian builds of two R packages: modeldata (MIT:
# compute-job classes, the Stack Overflow survey's country, the attrition table's job role)
# and mlbench (GPL-2, which bundles the UCI/StatLog files: vehicle silhouettes, satellite
# image pixels, soybean diseases, glass types, DNA splice junctions, letter images).
#   bench/compare_tabular.py DIR/*.toml
# Needs root for apt-get (R and the packages, about 100 MB).
set -euo pipefail
dir="$(realpath -m "${1:-/tmp/multiclass}")"
mkdir -p "$dir"
source "$(dirname "$0")/r_package.sh"
need_r_package modeldata
need_r_package mlbench
Rscript - "$dir" <<'R'
library(modeldata); library(mlbench)
dir <- commandArgs(trailingOnly = TRUE)[1]
out <- function(x, name) write.csv(x, file.path(dir, name), row.names = FALSE)
data(hpc_data); out(hpc_data, "hpc.csv")
data(stackoverflow); out(stackoverflow, "stackoverflow.csv")
data(attrition); out(attrition, "attrition.csv")
data(Vehicle); out(Vehicle, "vehicle.csv")
data(Satellite); out(Satellite, "satellite.csv")
data(Soybean); out(Soybean, "soybean.csv")
data(Glass); out(Glass, "glass.csv")
data(DNA); out(DNA, "dna.csv")
data(LetterRecognition); out(LetterRecognition, "letter.csv")
R
config() {
  printf '[data]\npath = "%s"\ntarget = "%s"\n' "$dir/$2" "$3" >"$dir/$1.toml"
}
config hpc hpc.csv class
config so_country stackoverflow.csv Country
config jobrole attrition.csv JobRole
config vehicle vehicle.csv Class
config satellite satellite.csv classes
config soybean soybean.csv Class
config glass glass.csv Type
config dna dna.csv Class
config letter letter.csv lettr
echo "written to $dir"
