#!/bin/sh
# Stand-in for run_and_time.sh of NVIDIA's BERT, for tests only. It checks what the real script needs (the
# config's variables, the phase-1 checkpoint, the eval set and the phase-2 shards at their mount points),
# then rank 0 replays a published MLPerf log from /fixtures at a chosen pace, as the real run prints it, less its
# cache_clear line: that one comes from the launching script (the plugin logs it before each trial), not the run.
#
# Controls, from the config file's exported variables:
#   STANDIN_REPLAY   fixture log to replay, relative to /fixtures
#   STANDIN_SECONDS  how long the replay takes (default 2)
#   STANDIN_FAIL     when set, the run fails with this message before any MLLOG line
set -eu
: "${BATCHSIZE:?BATCHSIZE not set}"
: "${MAX_STEPS:?MAX_STEPS not set}"
: "${LR:?LR not set}"
: "${SEED:?SEED not set}"
[ "${LOCAL_RANK:-0}" = 0 ] || exit 0
for need in /workspace/phase1/model.ckpt-28252.pt /workspace/evaldata/part_eval_10k.hdf5 \
    /workspace/data_phase2/part_00000_of_04320.hdf /workspace/data_phase2/part_04319_of_04320.hdf; do
    [ -s "$need" ] || [ -s "${need}5" ] || { echo "stand-in run_and_time.sh: missing $need" >&2; exit 3; }
done
[ -d /workspace/unit_test_data ] || { echo "stand-in run_and_time.sh: /workspace/unit_test_data is not mounted" >&2; exit 3; }
echo "STARTING TIMING RUN AT $(date '+%Y-%m-%d %H:%M:%S')"
if [ -n "${STANDIN_FAIL:-}" ]; then
    echo "stand-in failure: ${STANDIN_FAIL}" >&2
    exit 1
fi
replay="/fixtures/${STANDIN_REPLAY:?STANDIN_REPLAY not set}"
lines=$(wc -l < "$replay")
# The replayed log logs this trial's SEED (each trial has its own), so two trials are never one log twice: the
# score refuses copies of one run.
awk -v total="$lines" -v seconds="${STANDIN_SECONDS:-2}" -v seed="$SEED" '
    BEGIN { ticks = seconds * 10; every = ticks > 0 ? int(total / ticks) + 1 : total + 1 }
    /"key": "cache_clear"/ { next }
    /"key": "seed"/ { sub(/"value": [0-9]+/, "\"value\": " seed) }
    { print; fflush(); if (NR % every == 0) system("sleep 0.1") }' "$replay"
echo "ENDING TIMING RUN AT $(date '+%Y-%m-%d %H:%M:%S')"
echo "RESULT,bert,${SEED},0,root,stand-in"
