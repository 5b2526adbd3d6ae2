#!/usr/bin/env bash
# Shared helpers of scripts/train_*.sh (sourced, not run).
#
# Every training script: prints its plan, checks that the TFRecords it needs
# exist (and says how to build them if not), then runs train, then evaluate
# and export (`evaluate_and_export`). DRY_RUN=1 prints the commands without
# running them. Rerunning a script resumes training from the last checkpoint
# in its train_logdir.
set -euo pipefail

PYTHON="${PYTHON:-python}"

# require_shards DIR SPLIT HOWTO: fails with HOWTO unless DIR holds SPLIT.
require_shards() {
  local dir="$1" split="$2" howto="$3"
  if ! ls "${dir}/${split}"-*-of-*.tfrecord >/dev/null 2>&1; then
    echo "ERROR: no ${split}-*-of-*.tfrecord shards in ${dir}." >&2
    echo "Build them first:" >&2
    echo "  ${howto}" >&2
    exit 2
  fi
  echo "data: $(ls "${dir}/${split}"-*-of-*.tfrecord | wc -l) ${split} shards in ${dir}"
}

# run CMD...: prints the command, then runs it unless DRY_RUN=1.
run() {
  echo "+ $*"
  if [ "${DRY_RUN:-0}" != "1" ]; then
    "$@"
  fi
}

# distribution_flags: --num_gpus from NUM_GPUS (mirrored when > 1).
distribution_flags() {
  local gpus="${NUM_GPUS:-1}"
  if [ "${gpus}" -gt 1 ]; then
    echo "--distribution_strategy=mirrored --num_gpus=${gpus}"
  else
    echo "--num_gpus=${gpus}"
  fi
}

# initial_checkpoint_flags: --tf_initial_checkpoint from INIT_CHECKPOINT.
initial_checkpoint_flags() {
  if [ -n "${INIT_CHECKPOINT:-}" ]; then
    echo "--tf_initial_checkpoint=${INIT_CHECKPOINT}"
  fi
}

# evaluate_and_export SPLIT CROP [EXPORT_FLAG...]: evaluates the trained
# checkpoint in WORK_DIR/train on SPLIT with eval canvas CROP (H,W), then
# exports it to WORK_DIR/export. Reads MODEL_FLAGS, DATASET_DIR, WORK_DIR.
evaluate_and_export() {
  local split="$1" crop="$2"
  shift 2
  run "${PYTHON}" -m deeplab.evaluate "${MODEL_FLAGS[@]}" \
    --dataset_dir="${DATASET_DIR}" --eval_split="${split}" \
    --checkpoint_dir="${WORK_DIR}/train" --eval_logdir="${WORK_DIR}/eval" \
    --eval_crop_size="${crop}"
  run "${PYTHON}" -m deeplab.export_model "${MODEL_FLAGS[@]}" \
    --checkpoint_path="${WORK_DIR}/train" --export_path="${WORK_DIR}/export" \
    "$@"
}
