#!/usr/bin/env bash
# Run the whole grid, score it, and write the report:
#   ./run_all.sh [--profile paper|fair|smoke] [--methods a,b] [--spaces x,y] [--seeds 0-4]
#                [--epochs N] [--out results] [--benchmarks DIR] [--final-seeds 0-9]
#                [any other benchmark/run.py option]
#   ./run_all.sh --tests        run the test suite instead (.venv/bin/python -m pytest tests -q -n 2)
#
# Steps: (1) create .venv from requirements.txt when missing; (2) python benchmark/run.py over
# every registered method x space x seed (or the ones given); (3) when darts is among the
# spaces: python -m benchmark.retrain --results OUT --spaces darts --profile PROFILE (paper
# under fair; the DARTS space is scored by retraining its genotypes), then python -m
# benchmark.retrain select --results OUT --profile PROFILE --final-seeds FINAL_SEEDS (the DARTS
# paper's selection protocol: the best of each method's cells by held-out validation, retrained
# with --final-seeds, default 0-9 for paper and fair, 0-1 for smoke); (4) python -m benchmark.score;
# (5) python analysis/report.py --results OUT --out OUT/report (report.md, report.html).
# Defaults: profile paper where CUDA is available, else smoke (said loudly); methods = all
# registered; spaces = darts (scored by retraining) and the registered spaces whose benchmark
# table is found (each missing table is named on one line with the command that builds it;
# name a space with --spaces to run it anyway, unscored); seeds 0-4 (paper) or 0-1 (smoke);
# CIFAR-10 = --data, else NAS_DATA, else ~/.cache/darts-repro/data (torchvision's official
# archive is downloaded there once, md5-checked).
# Exit codes: 0 all done; 1 some run failed or has damaged files (the report is still written
# and names them); 2 bad input.
set -euo pipefail
cd "$(dirname "$0")"

usage() { sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; }

PY=.venv/bin/python
bootstrap() {
    if [ ! -x "$PY" ]; then
        echo "run_all: creating .venv from requirements.txt" >&2
        python3 -m venv .venv
        .venv/bin/pip install -r requirements.txt
        # test-only reference package; its numpy pin conflicts, so without its dependencies
        .venv/bin/pip install --no-deps -r requirements-test.txt
    fi
}

PROFILE="" METHODS="" SPACES="" SEEDS="" EPOCHS="" OUT="results" BENCH="" FINAL_SEEDS="" PASS=()
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        # the whole suite over NAS_TEST_WORKERS processes (pytest-xdist; default 2, 0 = serial;
        # a later -n in the arguments wins)
        --tests) shift; bootstrap; exec "$PY" -m pytest tests -q -n "${NAS_TEST_WORKERS:-2}" "$@" ;;
        --profile|--methods|--spaces|--seeds|--epochs|--out|--benchmarks|--final-seeds)
            [ $# -ge 2 ] || { echo "error: $1 needs a value" >&2; exit 2; }
            case "$1" in
                --profile) PROFILE="$2" ;; --methods) METHODS="$2" ;; --spaces) SPACES="$2" ;;
                --seeds) SEEDS="$2" ;; --epochs) EPOCHS="$2" ;; --out) OUT="$2" ;;
                --benchmarks) BENCH="$2" ;; --final-seeds) FINAL_SEEDS="$2" ;;
            esac
            shift 2 ;;
        --profile=*|--methods=*|--spaces=*|--seeds=*|--epochs=*|--out=*|--benchmarks=*|--final-seeds=*)
            set -- "${1%%=*}" "${1#*=}" "${@:2}" ;;
        *) PASS+=("$1"); shift ;;
    esac
done

bootstrap
if [ -z "$PROFILE" ]; then
    if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
        PROFILE=paper
    else
        PROFILE=smoke
        echo "run_all: ******** NO CUDA DEVICE: using the SMOKE profile (tiny supernet, few" \
             "epochs; numbers are NOT the paper protocol). Pass --profile paper to insist. ********" >&2
    fi
fi
case "$PROFILE" in paper|smoke|fair) ;; *) echo "error: --profile $PROFILE: valid: paper, fair, smoke" >&2; exit 2 ;; esac
case "$PROFILE" in   # say which protocol this grid runs (docs/profiles.md#fair-or-paper)
    paper) echo "run_all: profile paper: each method's own published protocol (to reproduce its numbers; methods are not ranked against each other where protocols differ)" >&2 ;;
    fair)  echo "run_all: profile fair: one schedule per space for every method (to compare methods; no published number is set against these runs)" >&2 ;;
    smoke) echo "run_all: profile smoke: a tiny pipeline check (no verdicts, not a protocol)" >&2 ;;
esac
RETRAIN_PROFILE="$PROFILE"; [ "$PROFILE" != fair ] || RETRAIN_PROFILE=paper   # one retraining protocol for all
[ -n "$SEEDS" ] || { [ "$PROFILE" != smoke ] && SEEDS=0-4 || SEEDS=0-1; }
if [ -n "$FINAL_SEEDS" ]; then   # checked now: a bad value must not wait for the searches
    "$PY" -c 'import sys
from benchmark.harness.grid import UsageError, parse_seeds
try:
    parse_seeds(sys.argv[1])
except UsageError as e:
    sys.exit("error: " + str(e).replace("--seeds", "--final-seeds"))' "$FINAL_SEEDS" || exit 2
fi
BENCH="${BENCH:-${NAS_BENCHMARKS:-${TORCH_HOME:-$HOME/.torch}}}"
[ -n "$METHODS" ] || METHODS="$("$PY" analysis/grid_defaults.py methods)"
if [ -z "$SPACES" ]; then
    SPACES="$("$PY" analysis/grid_defaults.py spaces "$BENCH")"
    if [ -z "$SPACES" ]; then
        echo "error: no search space to run by default (see above); set --benchmarks or" \
             "NAS_BENCHMARKS, or name spaces with --spaces to run them unscored" >&2
        exit 2
    fi
    echo "run_all: spaces: $SPACES" >&2
fi

RUN=("$PY" benchmark/run.py --profile "$PROFILE" --methods "$METHODS" --spaces "$SPACES"
     --seeds "$SEEDS" --out "$OUT")
[ -z "$EPOCHS" ] || RUN+=(--epochs "$EPOCHS")
[ ! -d "$BENCH" ] || RUN+=(--benchmarks "$BENCH")
echo "run_all: ${RUN[*]} ${PASS[*]:-}" >&2
status=0
"${RUN[@]}" ${PASS[@]+"${PASS[@]}"} || status=$?
[ "$status" -ne 2 ] || exit 2          # bad input: nothing ran

if [[ ",$SPACES," == *",darts,"* ]]; then   # DARTS-space genotypes are scored by retraining
    RETRAIN=("$PY" -m benchmark.retrain --results "$OUT" --spaces darts --profile "$RETRAIN_PROFILE")
    FWD=() i=0   # forward the run.py options the retraining command shares (data, devices, backend)
    while [ "$i" -lt "${#PASS[@]}" ]; do
        a="${PASS[$i]}"
        case "$a" in
            --no-progress|--deterministic|--retry-failed|--download) FWD+=("$a") ;;
            --data|--threads|--devices|--backend|--jobs|--per-device|--cpus-per-job|--gpus-per-job|\
            --slurm-partition|--slurm-time|--slurm-mem-gb|--slurm-parallelism|--slurm-folder|\
            --slurm-cluster|--ray-address)
                FWD+=("$a" "${PASS[$((i + 1))]:-}"); i=$((i + 1)) ;;
            --data=*|--threads=*|--devices=*|--backend=*|--jobs=*|--per-device=*|--cpus-per-job=*|\
            --gpus-per-job=*|--slurm-*=*|--ray-address=*) FWD+=("$a") ;;
        esac
        i=$((i + 1))
    done
    RETRAIN+=(${FWD[@]+"${FWD[@]}"})
    echo "run_all: ${RETRAIN[*]}" >&2
    rstatus=0
    "${RETRAIN[@]}" || rstatus=$?
    [ "$rstatus" -eq 0 ] || { echo "run_all: retraining exited with $rstatus (see above); the report" \
                                  "shows what finished" >&2; [ "$status" -ne 0 ] || status=1; }
    # The DARTS paper's selection protocol: per method, each search's cell trained 100 epochs
    # (select profile; smoke: select-smoke) and validated on held-out training images, the best
    # one retrained with FINAL_SEEDS (benchmark/retrain/select.py); the same forwarded options.
    [ -n "$FINAL_SEEDS" ] || { [ "$RETRAIN_PROFILE" = paper ] && FINAL_SEEDS=0-9 || FINAL_SEEDS=0-1; }
    SELECT=("$PY" -m benchmark.retrain select --results "$OUT" --profile "$RETRAIN_PROFILE"
            --final-seeds "$FINAL_SEEDS" ${FWD[@]+"${FWD[@]}"})
    echo "run_all: ${SELECT[*]}" >&2
    rstatus=0
    "${SELECT[@]}" || rstatus=$?
    [ "$rstatus" -eq 0 ] || { echo "run_all: the selection exited with $rstatus (see above); rerun" \
                                  "./run_all.sh to continue it" >&2; [ "$status" -ne 0 ] || status=1; }
fi

SCORE=("$PY" -m benchmark.score --results "$OUT")
[ ! -d "$BENCH" ] || SCORE+=(--benchmarks "$BENCH")
step=0
"${SCORE[@]}" || step=$?               # 1: damaged runs skipped (named), the others scored
[ "$step" -ne 2 ] || exit 2
[ "$step" -eq 0 ] || status=1
step=0
"$PY" analysis/report.py --results "$OUT" --out "$OUT/report" || step=$?   # 1: damaged runs left out
[ "$step" -ne 2 ] || exit 2
[ "$step" -eq 0 ] || status=1
echo "run_all: report at $OUT/report/report.md and report.html" >&2
exit "$status"
