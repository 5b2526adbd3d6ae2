#!/usr/bin/env bash
# Cityscapes (fine): xception_65 at output stride 16 (ASPP 6/12/18, decoder
# at 4), crop 769x769, batch 8, poly LR 0.01, 90k steps (the official
# Cityscapes recipe); then evaluation on val_fine at full 1025x2049 and
# export.
#
#   DATASET_DIR=/data/cityscapes/tfrecord INIT_CHECKPOINT=/ckpt/xception_65 \
#     NUM_GPUS=8 bash scripts/train_cityscapes.sh
#
# DATASET_DIR must hold train_fine-* and val_fine-* shards (python -m
# deeplab.datasets.build_cityscapes_data).
# Knobs: WORK_DIR, NUM_STEPS, BATCH_SIZE, NUM_GPUS, INIT_CHECKPOINT, DRY_RUN=1.
cd "$(dirname "$0")/.."
source scripts/_train_common.sh

DATASET_DIR="${DATASET_DIR:-./data/cityscapes/tfrecord}"
WORK_DIR="${WORK_DIR:-./runs/cityscapes}"
NUM_STEPS="${NUM_STEPS:-90000}"
BATCH_SIZE="${BATCH_SIZE:-8}"
MODEL_FLAGS=(--dataset=cityscapes --model_variant=xception_65
             --output_stride=16 --atrous_rates=6 --atrous_rates=12
             --atrous_rates=18 --decoder_output_stride=4)

echo "Cityscapes: train xception_65 OS16 on train_fine for ${NUM_STEPS} steps" \
     "(batch ${BATCH_SIZE}, crop 769x769, poly LR 0.01), then evaluate on" \
     "val_fine at 1025x2049 and export. Output: ${WORK_DIR}"
require_shards "${DATASET_DIR}" train_fine \
  "python -m deeplab.datasets.build_cityscapes_data --cityscapes_root=/data/cityscapes --output_dir=${DATASET_DIR}"
require_shards "${DATASET_DIR}" val_fine \
  "python -m deeplab.datasets.build_cityscapes_data --cityscapes_root=/data/cityscapes --output_dir=${DATASET_DIR}"

run "${PYTHON}" -m deeplab.train "${MODEL_FLAGS[@]}" \
  --dataset_dir="${DATASET_DIR}" --train_split=train_fine \
  --train_logdir="${WORK_DIR}/train" --train_crop_size=769,769 \
  --train_batch_size="${BATCH_SIZE}" --training_number_of_steps="${NUM_STEPS}" \
  --base_learning_rate=0.01 --learning_policy=poly \
  --fine_tune_batch_norm=true \
  $(distribution_flags) $(initial_checkpoint_flags)
evaluate_and_export val_fine 1025,2049
