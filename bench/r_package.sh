# Sourced by the bench scripts that read data from an R package's Debian build:
# `need_r_package NAME` installs R and r-cran-NAME with apt-get (needs root) unless R can
# already load NAME.
need_r_package() {
  if ! Rscript -e "library($1)" >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq r-base-core "r-cran-$1" >/dev/null
  fi
}
