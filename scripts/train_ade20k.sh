#!/usr/bin/env bash
# ADE20K (SceneParsing, 150 classes + ignore 0): xception_65 at output
# stride 16 (ASPP 6/12/18, decoder at 4), images resized to 513 on the long
# side, crop 513, batch 16, poly LR 0.01, 150k steps (official ADE20K
# recipe); then evaluation on val and export.
#
#   DATASET_DIR=/data/ade20k/tfrecord INIT_CHECKPOINT=/ckpt/xception_65 \
#     NUM_GPUS=8 bash scripts/train_ade20k.sh
#
# DATASET_DIR must hold train-* and val-* shards (python -m
# deeplab.datasets.build_ade20k_data).
# Knobs: WORK_DIR, NUM_STEPS, BATCH_SIZE, NUM_GPUS, INIT_CHECKPOINT, DRY_RUN=1.
cd "$(dirname "$0")/.."
source scripts/_train_common.sh

DATASET_DIR="${DATASET_DIR:-./data/ade20k/tfrecord}"
WORK_DIR="${WORK_DIR:-./runs/ade20k}"
NUM_STEPS="${NUM_STEPS:-150000}"
BATCH_SIZE="${BATCH_SIZE:-16}"
MODEL_FLAGS=(--dataset=ade20k --model_variant=xception_65
             --output_stride=16 --atrous_rates=6 --atrous_rates=12
             --atrous_rates=18 --decoder_output_stride=4
             --min_resize_value=513 --max_resize_value=513)

echo "ADE20K: train xception_65 OS16 on train for ${NUM_STEPS} steps (batch" \
     "${BATCH_SIZE}, resize 513, crop 513, poly LR 0.01), then evaluate on val" \
     "and export. Output: ${WORK_DIR}"
require_shards "${DATASET_DIR}" train \
  "python -m deeplab.datasets.build_ade20k_data --output_dir=${DATASET_DIR}"
require_shards "${DATASET_DIR}" val \
  "python -m deeplab.datasets.build_ade20k_data --output_dir=${DATASET_DIR}"

run "${PYTHON}" -m deeplab.train "${MODEL_FLAGS[@]}" \
  --dataset_dir="${DATASET_DIR}" --train_split=train \
  --train_logdir="${WORK_DIR}/train" --train_crop_size=513,513 \
  --train_batch_size="${BATCH_SIZE}" --training_number_of_steps="${NUM_STEPS}" \
  --base_learning_rate=0.01 --learning_policy=poly \
  --fine_tune_batch_norm=true \
  $(distribution_flags) $(initial_checkpoint_flags)
evaluate_and_export val 513,513
