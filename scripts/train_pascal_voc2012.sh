#!/usr/bin/env bash
# PASCAL VOC 2012, the paper's recipe: train_aug, xception_65 at output
# stride 16 (ASPP 6/12/18, decoder at 4), batch 16, crop 513, poly LR 0.007,
# 30k steps; then evaluation on val (OS16, single scale) and export.
#
#   DATASET_DIR=/data/voc/tfrecord INIT_CHECKPOINT=/ckpt/xception_65 \
#     NUM_GPUS=8 bash scripts/train_pascal_voc2012.sh
#
# DATASET_DIR must hold train_aug-* and val-* shards (build them with
# python -m deeplab.datasets.build_voc2012_data, with SBD for train_aug).
# INIT_CHECKPOINT: ImageNet-pretrained weights (core/modeling/import_weights.py), as
# the paper starts from; training from scratch will not reach its mIoU.
# Knobs: WORK_DIR, NUM_STEPS, BATCH_SIZE, NUM_GPUS, DRY_RUN=1.
cd "$(dirname "$0")/.."
source scripts/_train_common.sh

DATASET_DIR="${DATASET_DIR:-./data/pascal_voc_seg/tfrecord}"
WORK_DIR="${WORK_DIR:-./runs/pascal_voc2012}"
NUM_STEPS="${NUM_STEPS:-30000}"
BATCH_SIZE="${BATCH_SIZE:-16}"
MODEL_FLAGS=(--dataset=pascal_voc_seg --model_variant=xception_65
             --output_stride=16 --atrous_rates=6 --atrous_rates=12
             --atrous_rates=18 --decoder_output_stride=4)

echo "PASCAL VOC 2012: train xception_65 OS16 on train_aug for ${NUM_STEPS}" \
     "steps (batch ${BATCH_SIZE}, crop 513, poly LR 0.007), then evaluate on" \
     "val and export a SavedModel. Output: ${WORK_DIR}"
require_shards "${DATASET_DIR}" train_aug \
  "python -m deeplab.datasets.build_voc2012_data --output_dir=${DATASET_DIR} (see README)"
require_shards "${DATASET_DIR}" val \
  "python -m deeplab.datasets.build_voc2012_data --output_dir=${DATASET_DIR}"

run "${PYTHON}" -m deeplab.train "${MODEL_FLAGS[@]}" \
  --dataset_dir="${DATASET_DIR}" --train_split=train_aug \
  --train_logdir="${WORK_DIR}/train" --train_crop_size=513,513 \
  --train_batch_size="${BATCH_SIZE}" --training_number_of_steps="${NUM_STEPS}" \
  --base_learning_rate=0.007 --learning_policy=poly \
  --fine_tune_batch_norm=true \
  $(distribution_flags) $(initial_checkpoint_flags)
evaluate_and_export val 513,513
