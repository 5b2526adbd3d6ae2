#!/usr/bin/env bash
# End-to-end run on the bundled demo dataset, on a fresh machine with Python.
#
#   bash scripts/local_test.sh
#
# Creates .venv when missing, generates the demo dataset (real VOC layout),
# builds its TFRecords with the VOC builder, trains a MobileNetV2
# DeepLabv3+ from scratch, evaluates it, exports a SavedModel, segments a
# demo image, and prints a summary. Everything goes under $WORK_DIR
# (default: runs/local_test). Rerunning resumes instead of starting over.
# Knobs: NUM_STEPS, BATCH_SIZE, NUM_TRAIN, NUM_VAL, IMAGE_SIZE.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO_ROOT="$(pwd)"

stage_start() { STAGE_NAME="$1"; STAGE_T0=$(date +%s); echo; echo "=== ${STAGE_NAME}"; }
stage_end() { local dt=$(( $(date +%s) - STAGE_T0 )); TIMINGS+=("$(printf '%-22s %5ds' "${STAGE_NAME}" "${dt}")"); }
TIMINGS=()
T0=$(date +%s)

stage_start "setup (.venv)"
source scripts/ensure_venv.sh
stage_end

WORK_DIR="${WORK_DIR:-${REPO_ROOT}/runs/local_test}"
mkdir -p "${WORK_DIR}"
WORK_DIR="$(cd "${WORK_DIR}" && pwd)"
NUM_STEPS="${NUM_STEPS:-1000}"
BATCH_SIZE="${BATCH_SIZE:-16}"
NUM_TRAIN="${NUM_TRAIN:-1000}"
NUM_VAL="${NUM_VAL:-200}"
IMAGE_SIZE="${IMAGE_SIZE:-128}"
VOC_DIR="${WORK_DIR}/data/demo_voc"
TFRECORD_DIR="${WORK_DIR}/data/tfrecord"
TRAIN_LOGDIR="${WORK_DIR}/train"
EVAL_LOGDIR="${WORK_DIR}/eval"
EXPORT_DIR="${WORK_DIR}/export"
VIS_DIR="${WORK_DIR}/vis"
MODEL_FLAGS=(--dataset=demo --model_variant=mobilenet_v2 --output_stride=16
             --decoder_output_stride=4 --batch_norm_decay=0.9)

stage_start "demo dataset"
if [ -f "${VOC_DIR}/ImageSets/Segmentation/train.txt" ]; then
  echo "reusing ${VOC_DIR}"
else
  python -m deeplab.datasets.build_demo_data --output_dir="${VOC_DIR}" \
    --num_train="${NUM_TRAIN}" --num_val="${NUM_VAL}" \
    --image_size="${IMAGE_SIZE}" --seed=0
fi
stage_end

stage_start "TFRecords (VOC builder)"
if ls "${TFRECORD_DIR}"/val-*.tfrecord >/dev/null 2>&1; then
  echo "reusing ${TFRECORD_DIR}"
else
  python -m deeplab.datasets.build_voc2012_data \
    --image_folder="${VOC_DIR}/JPEGImages" \
    --semantic_segmentation_folder="${VOC_DIR}/SegmentationClass" \
    --list_folder="${VOC_DIR}/ImageSets/Segmentation" \
    --output_dir="${TFRECORD_DIR}" --num_shards=2 --num_workers=2
fi
stage_end

stage_start "train"
python -m deeplab.train "${MODEL_FLAGS[@]}" \
  --dataset_dir="${TFRECORD_DIR}" --train_split=train \
  --train_logdir="${TRAIN_LOGDIR}" \
  --train_crop_size="${IMAGE_SIZE},${IMAGE_SIZE}" \
  --train_batch_size="${BATCH_SIZE}" \
  --training_number_of_steps="${NUM_STEPS}" \
  --optimizer=adam --base_learning_rate=0.003 --learning_policy=poly \
  --min_scale_factor=0.75 --max_scale_factor=1.5 \
  --scale_factor_step_size=0.25 \
  --weight_decay=1e-5 \
  --save_interval_steps=200 --log_steps=100 --image_summary_steps=200 \
  --eval_online=200 --eval_split=val \
  --eval_crop_size="${IMAGE_SIZE},${IMAGE_SIZE}" --eval_batch_size=8
stage_end

stage_start "evaluate"
python -m deeplab.evaluate "${MODEL_FLAGS[@]}" \
  --dataset_dir="${TFRECORD_DIR}" --eval_split=val \
  --checkpoint_dir="${TRAIN_LOGDIR}" --eval_logdir="${EVAL_LOGDIR}" \
  --eval_crop_size="${IMAGE_SIZE},${IMAGE_SIZE}" --eval_batch_size=8
stage_end

stage_start "export"
python -m deeplab.export_model "${MODEL_FLAGS[@]}" \
  --checkpoint_path="${TRAIN_LOGDIR}" --export_path="${EXPORT_DIR}"
stage_end

stage_start "inference"
DEMO_IMAGE="$(head -n 1 "${VOC_DIR}/ImageSets/Segmentation/val.txt")"
python -m deeplab.inference --dataset=demo --model_path="${EXPORT_DIR}" \
  --input="${VOC_DIR}/JPEGImages/${DEMO_IMAGE}.jpg" --output_dir="${VIS_DIR}"
stage_end

MIOU="$(python -c "import json,sys; print(f\"{json.load(open(sys.argv[1]))['miou']:.4f}\")" "${EVAL_LOGDIR}/metrics.json")"
cat <<SUMMARY

================ local_test summary ================
val mIoU (demo, ${NUM_VAL} images): ${MIOU}
metrics:      ${EVAL_LOGDIR}/metrics.json
checkpoints:  ${TRAIN_LOGDIR}
SavedModel:   ${EXPORT_DIR}
predictions:  ${VIS_DIR}
mIoU curve:   tensorboard --logdir=${WORK_DIR}  (train/eval: miou every 200 steps)
time per stage:
$(printf '  %s\n' "${TIMINGS[@]}")
  total                  $(( $(date +%s) - T0 ))s
====================================================
SUMMARY
