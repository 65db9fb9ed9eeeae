#!/usr/bin/env bash
# Populate leaderboard/leaderboard.json with FusionBench's own results. For every model pool
# given and every method: one `fusionbench run` (single_run entry, default parameters) and one
# `fusionbench sweep` over task subsets (subset_sweep entry); then rebuild the leaderboard from
# those outputs with `fusionbench leaderboard build`.
#
#   leaderboard/populate.sh mini_clip_full mini_clip_lora mini_clip_llora mini_t5_full mini_t5_lora mini_t5_llora
#                                            # what the shipped leaderboard.json holds (docs/leaderboard.md)
#   leaderboard/populate.sh dummy            # a quick plumbing check (the dummy pool is not a benchmark)
#
# Environment (all optional):
#   METHODS  methods to run (default: simple_average task_arithmetic ties dare tsv iso_c lorahub)
#   SUBSETS  subsets swept: all | pairs | full | size=K, or none for single runs only (default: all)
#   OUT      where runs and sweeps are written (default: outputs/leaderboard)
#   STORE    result store of the sweeps (default: $OUT/results.sqlite; a re-run resumes from it)
#   EXTRA    more key=value words for every run and sweep (e.g. "taskpool.limit=200 device=cuda")
#   KEEP     a leaderboard file whose entries are kept (newest wins among duplicates), e.g.
#            KEEP=leaderboard/leaderboard.json to keep entries published from elsewhere
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$#" -eq 0 ]; then
    echo "usage: leaderboard/populate.sh POOL [POOL ...]" >&2
    exit 2
fi
read -r -a methods <<< "${METHODS:-simple_average task_arithmetic ties dare tsv iso_c lorahub}"
read -r -a extra <<< "${EXTRA:-}"
subsets="${SUBSETS:-all}"
out="${OUT:-outputs/leaderboard}"
store="${STORE:-$out/results.sqlite}"
for pool in "$@"; do
    for method in "${methods[@]}"; do
        words=("${extra[@]}")
        case "$method" in
            knots)  # merges the dense LoRA updates: LoRA / L-LoRA pools in delta space only
                case "$pool" in *_lora|*_llora) words+=(modelpool.merge_space=delta) ;; *) continue ;; esac ;;
            regmean|regmean_plusplus)  # per-layer solves on dense weights: adapter pools in delta space
                case "$pool" in *_lora|*_llora) words+=(modelpool.merge_space=delta) ;; esac ;;
        esac
        fusionbench run "method=$method" "modelpool=$pool" "output_dir=$out/$pool/$method/run" "${words[@]}"
        if [ "$subsets" != none ]; then
            fusionbench sweep "method=$method" "modelpool=$pool" "subsets=$subsets" "store=$store" "output_dir=$out/$pool/$method/sweep" "${words[@]}"
        fi
    done
done
fusionbench leaderboard build "$out" ${KEEP:+"$KEEP"} out=leaderboard/leaderboard.json
