#!/usr/bin/env bash
# One prepared training session on a lent GPU: SFTMD x2/x3/x4 side by side, then Predictor/Corrector x2/x3/x4
# against the new SFTMDs, each started from the shipped checkpoint; exports candidates into $OUT/cand.
#   python -m training.pack_photos   # here, once: data/gpu_train, carried along
#   bash training/lent_gpu.sh        # there; SFTMD_MINUTES, IKC_MINUTES, DEVICE, THREADS, OUT, RUNS override
set -u
export PYTHONUNBUFFERED=1
DEVICE=${DEVICE:-cuda} THREADS=${THREADS:-4} OUT=${OUT:-runs/lent_gpu_out} RUNS=${RUNS:-runs/gpu}
SFTMD_MINUTES=${SFTMD_MINUTES:-4.5} IKC_MINUTES=${IKC_MINUTES:-2.5} DATA=${DATA:-data/gpu_train}
mkdir -p "$OUT/cand" "$RUNS"
common=(--data "$DATA" --device "$DEVICE" --threads "$THREADS" --anneal)
for s in 2 3 4; do
  python3 -m training.train_sftmd --config "training/configs/sftmd_x${s}_gpu.yaml" --run-dir "$RUNS/sftmd_x$s" \
    --from-checkpoint "checkpoints/sftmd_x$s.safetensors" --minutes "$SFTMD_MINUTES" "${common[@]}" \
    >"$RUNS/sftmd_x$s.out" 2>&1 &
done
wait
for s in 2 3 4; do
  python3 -m training.train_ikc --config "training/configs/ikc_x${s}_gpu.yaml" --sftmd-run "$RUNS/sftmd_x$s" \
    --run-dir "$RUNS/ikc_x$s" --from-checkpoint "checkpoints/ikc_x$s.safetensors" --minutes "$IKC_MINUTES" \
    "${common[@]}" >"$RUNS/ikc_x$s.out" 2>&1 &
done
wait
for s in 2 3 4; do
  python3 -m training.export --scale "$s" --sftmd-run "$RUNS/sftmd_x$s" --ikc-run "$RUNS/ikc_x$s" --out "$OUT/cand" \
    --data "$DATA" >>"$RUNS/export.out" 2>&1
done
tail -n 4 "$RUNS"/*/log.txt "$RUNS/export.out"
tar czf "$OUT/logs.tgz" "$RUNS"/*.out "$RUNS"/*/log.txt "$RUNS"/*/metrics.csv
