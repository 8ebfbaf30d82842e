#!/usr/bin/env bash
# Regenerate every figure of the README's case study with the tool's own commands.
#
#   docs/make_figures.sh            (from anywhere; needs .venv, e.g. after `make demo`)
#
# 1. runs the flagship, its four counterfactual variants and the boundary build-up pair into
#    results/ with their fixed seeds (2007 and 2010, the scenario files' own `runs.seed`) and
#    200 replicates each;
# 2. draws each batch's figures with `diffusion-sim plot` (the flagship's network picture at
#    2007, 2010 and 2020: EU-Russia in force, the TCN clause applying, the end);
# 3. compares the counterfactuals and the boundary pair with `diffusion-sim compare`;
# 4. copies the PNGs the README shows into docs/figures/, and fits the readmission baseline
#    rate to Russia's observed agreements (calibrate) for the fit figure.
#
# Every batch is run again from scratch (`--force`): the batch id hashes the scenario, seed,
# replicates, chunk size and package version, but not the code itself, so after a change to
# the model within one version a complete batch from the old code would otherwise be reused.
# The comparison tables land in results/compare/eu_russia_counterfactuals/comparison.md and
# results/compare/boundary_buildup/comparison.md.
set -euo pipefail
cd "$(dirname "$0")/.."

DS=${DS:-.venv/bin/diffusion-sim}
PY=${PY:-.venv/bin/python}
FIG=docs/figures
mkdir -p "$FIG"

# run SCENARIO SEED -> prints the results folder (the last line `run` writes to stdout)
run() {
    "$DS" run "scenarios/$1.yaml" --seed "$2" --force --no-plots | tail -n 1
}

base=$(run eu_russia_readmission 2007)
no_tcn=$(run eu_russia_no_tcn 2007)
no_cond=$(run eu_russia_no_conditionality 2007)
no_flows=$(run eu_russia_no_flows 2007)
fh=$(run eu_russia_freedom_house 2007)
bb=$(run boundary_buildup 2010)
bb0=$(run boundary_buildup_no_openness 2010)

# Every figure kind that applies, for every batch (into <results>/plots/).
for d in "$base" "$no_tcn" "$no_cond" "$no_flows" "$fh" "$bb" "$bb0"; do
    "$DS" plot "$d" >/dev/null
done
# The flagship's network picture: fixed dates and the default run (median final agreements).
"$DS" plot "$base" --kind network --dates 2007,2010,2020 >/dev/null

"$DS" compare "$base" "$no_tcn" "$no_cond" "$no_flows" "$fh" \
    --labels baseline,no_tcn,no_conditionality,no_flows,freedom_house \
    --out results/compare/eu_russia_counterfactuals
"$DS" compare "$bb" "$bb0" \
    --labels openness_2.0,openness_0 \
    --out results/compare/boundary_buildup

cp "$base/plots/spillover.png"   "$FIG/flagship_spillover.png"
cp "$base/plots/depth.png"       "$FIG/flagship_depth.png"
cp "$base/plots/network.png"     "$FIG/flagship_network.png"
cp "$base/plots/channels.png"    "$FIG/flagship_channels.png"
cp "$base/plots/hr_exposure.png" "$FIG/flagship_hr_exposure.png"
cp results/compare/eu_russia_counterfactuals/spillover_readmission.png \
    "$FIG/counterfactuals_readmission.png"
cp "$bb/plots/buildup.png"  "$FIG/boundary_buildup_index.png"
cp "$bb0/plots/buildup.png" "$FIG/boundary_buildup_no_openness_index.png"
cp results/compare/boundary_buildup/spillover_border_control.png \
    "$FIG/boundary_buildup_border_control.png"

# The likelihood fit of the readmission baseline rate to Russia's observed agreements.
"$DS" calibrate scenarios/eu_russia_readmission.yaml \
    --observed scenarios/data/eurasia/russia_readmission_observed.csv \
    --params mechanisms.readmission.intercept --until 2011 --out results/calibration/flagship
cp results/calibration/flagship/calibration_fit.png "$FIG/flagship_calibration_fit.png"

echo "figures in $FIG:"
ls -1 "$FIG"
