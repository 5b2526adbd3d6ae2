#!/usr/bin/env bash
# People segmentation for mobile: MobileNetV2 (depth 1.0) at output stride
# 16, two classes (background, person), 256x256, quantization-friendly head
# (ASPP lite without image pooling, no decoder: only convs, ReLU6 and one
# bilinear resize), Adam with cosine decay; then evaluation, and export to a
# SavedModel and a full-integer TFLite model.
#
#   DATASET_DIR=/data/people/tfrecord bash scripts/train_people_seg.sh
#
# DATASET_DIR must hold train-* and val-* shards of a 2-class dataset, e.g.
# built with python -m deeplab.datasets.build_custom_data --num_classes=2
# from VOC-style folders (person = 1, background = 0, void = 255).
# Knobs: WORK_DIR, NUM_STEPS, BATCH_SIZE, NUM_GPUS, INIT_CHECKPOINT, DRY_RUN=1.
cd "$(dirname "$0")/.."
source scripts/_train_common.sh

DATASET_DIR="${DATASET_DIR:-./data/people/tfrecord}"
WORK_DIR="${WORK_DIR:-./runs/people_seg}"
NUM_STEPS="${NUM_STEPS:-50000}"
BATCH_SIZE="${BATCH_SIZE:-32}"
MODEL_FLAGS=(--dataset=custom --num_classes=2 --model_variant=mobilenet_v2
             --depth_multiplier=1.0 --output_stride=16
             --add_image_level_feature=false
             --min_resize_value=256 --max_resize_value=256)

echo "People segmentation: train MobileNetV2 (2 classes, 256x256, no image" \
     "pooling, no decoder) for ${NUM_STEPS} steps (batch ${BATCH_SIZE}, Adam," \
     "cosine LR), then evaluate on val and export SavedModel + int8 TFLite." \
     "Output: ${WORK_DIR}"
require_shards "${DATASET_DIR}" train \
  "python -m deeplab.datasets.build_custom_data --num_classes=2 --output_dir=${DATASET_DIR} ..."
require_shards "${DATASET_DIR}" val \
  "python -m deeplab.datasets.build_custom_data --num_classes=2 --output_dir=${DATASET_DIR} ..."

run "${PYTHON}" -m deeplab.train "${MODEL_FLAGS[@]}" \
  --dataset_dir="${DATASET_DIR}" --train_split=train \
  --train_logdir="${WORK_DIR}/train" --train_crop_size=256,256 \
  --train_batch_size="${BATCH_SIZE}" --training_number_of_steps="${NUM_STEPS}" \
  --optimizer=adam --base_learning_rate=0.001 --learning_policy=cosine \
  --warmup_steps=1000 --batch_norm_decay=0.99 \
  $(distribution_flags) $(initial_checkpoint_flags)
evaluate_and_export val 256,256 --crop_size=256,256 \
  --export_formats=saved_model,tflite_int8 \
  --representative_dataset_dir="${DATASET_DIR}"
