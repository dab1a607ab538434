#!/usr/bin/env bash
# A lent GPU session in two calls of the device tool (each under its 10-minute limit), every run resumable:
#   here, once:  python -m training.pack_photos                       # data/gpu_train (8.5 MiB), carried along
#                mkdir -p data/gpu_bench && cp -r ../shared/benchmarks/Set5 data/gpu_bench/   # for call 2's check
#   call 1:      bash training/lent_gpu.sh sftmd       # throughput probe, then SFTMD x4/x3/x2 side by side
#   call 2:      bash training/lent_gpu.sh corrector   # Correctors against the new SFTMDs, export, Set5 check
#   or, for JPEG inputs (issue 18): bash training/lent_gpu.sh jpeg   # SFTMDs for JPEG inputs told the quality,
#                x4/x3/x2, exported
# (carry data/gpu_train, data/gpu_bench; call 2 also finds call 1's runs/gpu on a machine still warm, else carry
# the runs/gpu that call 1 brought back under $OUT). Both calls leave candidates, logs and states under $OUT.
# Overrides: DEVICE, THREADS, OUT, RUNS, DATA, BENCH, SCALES, PROBE_SECONDS, PROBE_SETTINGS, SFTMD_MINUTES,
# IKC_MINUTES, EXTRA (more --set options for every run; the CPU dry run in tests/test_training.py uses them).
set -u
export PYTHONUNBUFFERED=1
PHASE=${1:?"usage: bash training/lent_gpu.sh sftmd|corrector|jpeg"}
DEVICE=${DEVICE:-cuda} THREADS=${THREADS:-4} OUT=${OUT:-runs/lent_gpu_out} RUNS=${RUNS:-runs/gpu}
DATA=${DATA:-data/gpu_train} BENCH=${BENCH:-data/gpu_bench} SCALES=${SCALES:-"4 3 2"}
PROBE_SECONDS=${PROBE_SECONDS:-8} PROBE_SETTINGS=${PROBE_SETTINGS:-} EXTRA=${EXTRA:-}
SFTMD_MINUTES=${SFTMD_MINUTES:-5} IKC_MINUTES=${IKC_MINUTES:-4}
mkdir -p "$OUT/cand" "$RUNS"
common=(--data "$DATA" --device "$DEVICE" --threads "$THREADS" --anneal)

if [ "$PHASE" = sftmd ]; then
  settings=()
  [ -n "$PROBE_SETTINGS" ] && settings=(--settings "$PROBE_SETTINGS")
  python3 -m training.throughput --device "$DEVICE" --seconds "$PROBE_SECONDS" --data "$DATA" "${settings[@]}" \
    --json "$OUT/throughput.json" --choice "$RUNS/choice.txt" >"$OUT/throughput.out" 2>&1 \
    || echo "" >"$RUNS/choice.txt"  # no probe result: the configs' own settings
  read -r -a chosen <"$RUNS/choice.txt"
  for s in $SCALES; do
    # shellcheck disable=SC2086  # EXTRA is a list of options
    python3 -m training.train_sftmd --config "training/configs/sftmd_x${s}_gpu.yaml" --run-dir "$RUNS/sftmd_x$s" \
      --from-checkpoint "checkpoints/sftmd_x$s.safetensors" --minutes "$SFTMD_MINUTES" "${common[@]}" \
      "${chosen[@]}" $EXTRA >"$RUNS/sftmd_x$s.out" 2>&1 &
  done
  wait
  for s in $SCALES; do
    python3 -m training.export --scale "$s" --sftmd-run "$RUNS/sftmd_x$s" --out "$OUT/cand" --data "$DATA" \
      >>"$RUNS/export.out" 2>&1
  done
elif [ "$PHASE" = corrector ]; then
  for s in $SCALES; do
    [ -f "$RUNS/sftmd_x$s/state.safetensors" ] && sftmd="$RUNS/sftmd_x$s" || sftmd="checkpoints/sftmd_x$s.safetensors"
    # shellcheck disable=SC2086
    python3 -m training.train_ikc --config "training/configs/corrector_x${s}.yaml" --sftmd-run "$sftmd" \
      --run-dir "$RUNS/corrector_x$s" --from-checkpoint "checkpoints/ikc_x$s.safetensors" \
      --minutes "$IKC_MINUTES" "${common[@]}" --set correction_steps=7 --set batch_size=32 --set amp=true \
      $EXTRA >"$RUNS/corrector_x$s.out" 2>&1 &
  done
  wait
  for s in $SCALES; do
    [ -f "$RUNS/sftmd_x$s/state.safetensors" ] && sftmd="$RUNS/sftmd_x$s" || sftmd="checkpoints/sftmd_x$s.safetensors"
    ikc="$RUNS/corrector_x$s/best.safetensors"
    [ -f "$ikc" ] || ikc="$RUNS/corrector_x$s"  # no validation reached: the last state
    python3 -m training.export --scale "$s" --sftmd-run "$sftmd" --ikc-run "$ikc" --out "$OUT/cand" --data "$DATA" \
      >>"$RUNS/export.out" 2>&1
    if [ -d "$BENCH/Set5" ]; then
      python3 -m evaluation.evaluate --hr-dir "$BENCH/Set5" --scale "$s" --checkpoints "$OUT/cand" --final-only \
        --workers 4 --json "$OUT/set5_x$s.json" >>"$RUNS/evaluate.out" 2>&1
    fi
  done
elif [ "$PHASE" = jpeg ]; then
  for s in $SCALES; do  # JPEG SFTMDs told the quality, from the shipped one for JPEG inputs where there is one
    start="checkpoints/sftmd_x${s}_jpeg.safetensors"
    [ -f "$start" ] || start="checkpoints/sftmd_x$s.safetensors"
    # shellcheck disable=SC2086
    python3 -m training.train_sftmd --config "training/configs/sftmd_x${s}_jpeg_quality.yaml" \
      --run-dir "$RUNS/sftmd_x${s}_jpeg" --from-checkpoint "$start" --minutes "$SFTMD_MINUTES" "${common[@]}" \
      $EXTRA >"$RUNS/sftmd_x${s}_jpeg.out" 2>&1 &
  done
  wait
  for s in $SCALES; do  # beside the lossless SFTMD of this session's candidates, else the shipped one
    lossless="$OUT/cand/sftmd_x$s.safetensors"
    [ -f "$lossless" ] || lossless="checkpoints/sftmd_x$s.safetensors"
    python3 -m training.export --scale "$s" --sftmd-run "$lossless" \
      --jpeg-sftmd-run "$RUNS/sftmd_x${s}_jpeg" --out "$OUT/cand" --data "$DATA" >>"$RUNS/export.out" 2>&1
  done
else
  echo "unknown phase $PHASE: use sftmd, corrector or jpeg" >&2
  exit 2
fi
tail -n 3 "$RUNS"/*/log.txt "$RUNS"/*.out
mkdir -p "$OUT/runs"
tar czf "$OUT/runs/gpu_runs.tgz" "$RUNS"  # states to resume from, logs and metrics
