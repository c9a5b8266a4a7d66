#!/usr/bin/env bash
# Refresh the vendored Data Docs assets from the npm registry (the versions Great Expectations' page
# templates name). Run from anywhere: bash expectations/data_docs/vendor.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
packages=(bootstrap@4.3.1 jquery@3.7.1 popper.js@1.12.9 bootstrap-table@1.19.1 bootstrap-datepicker@1.9.0
          vega@5.33.1 vega-lite@5.23.0 vega-embed@6.29.0)
cd "$work"
for package in "${packages[@]}"; do
  tarball="$(npm pack "$package" --silent | tail -1)"
  name="${package%@*}"
  mkdir -p "$name" && tar xzf "$tarball" -C "$name"
done
rm -rf "$out" && mkdir -p "$out/licenses"
cp bootstrap/package/dist/css/bootstrap.min.css bootstrap/package/dist/js/bootstrap.min.js "$out/"
cp jquery/package/dist/jquery.min.js popper.js/package/dist/umd/popper.min.js "$out/"
cp bootstrap-table/package/dist/bootstrap-table.min.css bootstrap-table/package/dist/bootstrap-table.min.js "$out/"
cp bootstrap-table/package/dist/extensions/filter-control/bootstrap-table-filter-control.min.css \
   bootstrap-table/package/dist/extensions/filter-control/bootstrap-table-filter-control.min.js "$out/"
cp bootstrap-datepicker/package/dist/css/bootstrap-datepicker.min.css \
   bootstrap-datepicker/package/dist/js/bootstrap-datepicker.min.js "$out/"
cp vega/package/build/vega.min.js vega-lite/package/build/vega-lite.min.js vega-embed/package/build/vega-embed.min.js "$out/"
for name in bootstrap jquery bootstrap-table bootstrap-datepicker vega-lite vega-embed; do
  cp "$(ls "$name"/package/LICENSE* | head -1)" "$out/licenses/$name.txt"
done
for package in "${packages[@]}"; do
  printf '%s\t%s\n' "$package" "$(npm view "$package" license)"
done > "$out/licenses/VERSIONS.tsv"
ls -la "$out"
