"""Learning per step and per second: our trainer against the Model Garden's.

Trains the same DeepLabv3+ configuration from scratch with our `train.py`
and with the TF Model Garden's trainer (`official.vision.train`, in its own
virtual environment, see `bench/setup_venvs.sh`), on the same demo-dataset
TFRecords, and reports for each run the val mIoU at every evaluation, the
training steps/s, and the wall time of the whole job (start-up, training
and evaluations).

The shared configuration (issue 4's "same config"):

* data: the demo dataset, 1000 train / 200 val images of 128x128, 5
  classes (`deeplab.datasets.build_demo_data --seed=0`), written once;
* training: batch 8, 96x96 crops, random scale 0.5-2.0 of the original
  size, horizontal flips; momentum SGD (0.9), poly learning rate 0.02
  (power 0.9) to 0 over the run, no warm-up; L2 weight decay 1e-5 on
  kernels (both use `wd * sum(w^2) / 2`); BatchNorm momentum 0.9, not
  synchronized; float32; one CPU device;
* model: OS16, ASPP (rates 6/12/18 for ResNet-50, none for MobileNetV2)
  with image pooling, dropout 0.1 and depthwise-separable convs, the v3+
  decoder fusing the stride-4 feature (48 filters) with two separable 3x3
  convs of 256, ReLU; ResNet-50 with the plain 7x7 stem and unit rates
  (1, 1, 1) in the last block;
* evaluation: the 200 val images at full size, mIoU over the 5 classes.

The Model Garden's parser fits an image into the output size before it
jitters the scale, so its scale range is divided by 96/128 to give the same
0.5-2.0 range of the original size as ours. It has no Xception, so
`xception_65` runs with our trainer only.

`ours_vs` is our trainer with `--backbone_initializer=variance_scaling`
(fan-in scaled truncated normal, as the Model Garden initializes its
backbones) instead of slim's truncated normal of stddev 0.09, which the
official MobileNet and Xception scopes use (ResNet's official He
initializer is already fan-in scaled).

Usage:
  python bench/train_learning.py --work_dir=/tmp/learn
      [--pairs=resnet_v1_50,mobilenet_v2,xception_65] [--steps=400]
      [--eval_every=200] [--impls=ours,ours_vs,garden]

Writes `WORK_DIR/results.json` and prints a Markdown table.
"""

import glob
import json
import os
import subprocess
import sys
import time

from absl import app
from absl import flags

from garden_configs import GARDEN_MODELS  # bench/, the script's folder.
from garden_configs import same_architecture

FLAGS = flags.FLAGS
flags.DEFINE_string("work_dir", "/tmp/deeplab_train_learning",
                    "Where the data, the runs and results.json go.")
flags.DEFINE_list("pairs", ["resnet_v1_50", "mobilenet_v2", "xception_65"],
                  "Model variants to train.")
flags.DEFINE_list("impls", ["ours", "ours_vs", "garden"],
                  "Runs: ours (official initializers), ours_vs (ours with "
                  "--backbone_initializer=variance_scaling), garden.")
flags.DEFINE_integer("steps", 400, "Training steps of every run.")
flags.DEFINE_integer("eval_every", 200, "Evaluate every this many steps.")
flags.DEFINE_integer("batch", 8, "Training batch size.")
flags.DEFINE_integer("crop", 96, "Square training crop size.")
flags.DEFINE_float("learning_rate", 0.02, "Initial poly learning rate.")

_BENCH = os.path.dirname(os.path.abspath(__file__))
GARDEN_PYTHON = os.path.join(_BENCH, ".venv-garden", "bin", "python")
IMAGE_SIZE = 128
NUM_CLASSES = 5
NUM_VAL = 200
WEIGHT_DECAY = 1e-5
BN_MOMENTUM = 0.9

# Extra flags of our runs.
OUR_IMPLS = {"ours": [],
             "ours_vs": ["--backbone_initializer=variance_scaling"]}
# Ours: --model_variant plus the ASPP rates of the pair.
OUR_RATES = {"resnet_v1_50": (6, 12, 18), "xception_65": (6, 12, 18),
             "mobilenet_v2": ()}

def build_data(work_dir: str) -> str:
  """Writes the demo TFRecords once; returns their folder."""
  tfrecord_dir = os.path.join(work_dir, "tfrecord")
  if not glob.glob(os.path.join(tfrecord_dir, "val-*")):
    subprocess.run(
        [sys.executable, "-m", "deeplab.datasets.build_demo_data",
         f"--output_dir={os.path.join(work_dir, 'voc')}", "--num_train=1000",
         f"--num_val={NUM_VAL}", f"--image_size={IMAGE_SIZE}", "--seed=0",
         f"--tfrecord_dir={tfrecord_dir}"], check=True)
  return tfrecord_dir


def our_command(impl: str, variant: str, tfrecord_dir: str,
                logdir: str) -> list:
  """Our train.py with the shared configuration."""
  rates = [f"--atrous_rates={r}" for r in OUR_RATES[variant]]
  return [
      sys.executable, "-m", "deeplab.train", "--dataset=demo",
      f"--model_variant={variant}", "--output_stride=16", *rates,
      "--decoder_output_stride=4", f"--batch_norm_decay={BN_MOMENTUM}",
      f"--dataset_dir={tfrecord_dir}", f"--train_logdir={logdir}",
      f"--train_crop_size={FLAGS.crop},{FLAGS.crop}",
      f"--train_batch_size={FLAGS.batch}",
      f"--training_number_of_steps={FLAGS.steps}", "--optimizer=momentum",
      f"--base_learning_rate={FLAGS.learning_rate}",
      f"--weight_decay={WEIGHT_DECAY}",
      f"--save_interval_steps={FLAGS.eval_every}", "--log_steps=25",
      "--image_summary_steps=0", f"--eval_online={FLAGS.eval_every}",
      "--eval_split=val", f"--eval_crop_size={IMAGE_SIZE},{IMAGE_SIZE}",
      "--eval_batch_size=8", *OUR_IMPLS[impl]]


def garden_params(variant: str, tfrecord_dir: str) -> dict:
  """The Model Garden's params override for the shared configuration."""
  # The parser scales the image to fit the output size, then jitters.
  fit = FLAGS.crop / IMAGE_SIZE
  return {
      "runtime": {"distribution_strategy": "one_device", "num_gpus": 0,
                  "mixed_precision_dtype": "float32"},
      "task": {
          "init_checkpoint": "", "init_checkpoint_modules": "",
          "model": {
              "num_classes": NUM_CLASSES, "input_size": [None, None, 3],
              **same_architecture(variant),
              "norm_activation": {"activation": "relu",
                                  "norm_momentum": BN_MOMENTUM,
                                  "norm_epsilon": 1e-3,
                                  "use_sync_bn": False}},
          "losses": {"l2_weight_decay": WEIGHT_DECAY, "ignore_label": 255},
          "train_data": {
              "input_path": os.path.join(tfrecord_dir, "train-*"),
              "output_size": [FLAGS.crop, FLAGS.crop],
              "global_batch_size": FLAGS.batch, "is_training": True,
              "aug_scale_min": 0.5 / fit, "aug_scale_max": 2.0 / fit},
          "validation_data": {
              "input_path": os.path.join(tfrecord_dir, "val-*"),
              "output_size": [IMAGE_SIZE, IMAGE_SIZE],
              "global_batch_size": 8, "is_training": False,
              "resize_eval_groundtruth": True, "groundtruth_padded_size": [],
              "drop_remainder": False}},
      "trainer": {
          "train_steps": FLAGS.steps, "steps_per_loop": 25,
          "summary_interval": 25, "checkpoint_interval": FLAGS.eval_every,
          "validation_interval": FLAGS.eval_every,
          "validation_steps": NUM_VAL // 8,
          "optimizer_config": {
              "optimizer": {"type": "sgd", "sgd": {"momentum": 0.9}},
              "learning_rate": {"type": "polynomial", "polynomial": {
                  "initial_learning_rate": FLAGS.learning_rate,
                  "decay_steps": FLAGS.steps, "end_learning_rate": 0.0,
                  "power": 0.9}},
              "warmup": {"type": None}}}}


def garden_command(variant: str, tfrecord_dir: str, logdir: str) -> list:
  return [GARDEN_PYTHON, "-m", "official.vision.train",
          "--experiment=seg_deeplabv3plus_pascal", "--mode=train_and_eval",
          f"--model_dir={logdir}",
          f"--params_override={json.dumps(garden_params(variant, tfrecord_dir))}"]


def read_scalars(folder: str, tag: str) -> dict:
  """step -> value of a scalar summary in the event files under `folder`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  values = {}
  pattern = os.path.join(folder, "**", "events.out.tfevents.*")
  for path in glob.glob(pattern, recursive=True):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == tag:
          number = (value.simple_value if value.HasField("simple_value")
                    else float(tf.make_ndarray(value.tensor)))
          values[int(event.step)] = number
  return values


def run_one(impl: str, variant: str, tfrecord_dir: str) -> dict:
  """Trains one configuration; returns its figures."""
  logdir = os.path.join(FLAGS.work_dir, "runs", f"{impl}_{variant}")
  if os.path.exists(logdir):
    raise FileExistsError(f"{logdir} exists: pick a new --work_dir or "
                          "remove it, so that every run starts from scratch.")
  if impl == "garden":
    command = garden_command(variant, tfrecord_dir, logdir)
  else:
    command = our_command(impl, variant, tfrecord_dir, logdir)
  log_path = logdir + ".log"
  os.makedirs(os.path.dirname(log_path), exist_ok=True)
  print(f"[{impl} {variant}] training {FLAGS.steps} steps; log: {log_path}",
        flush=True)
  start = time.perf_counter()
  with open(log_path, "w") as log:
    subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True)
  wall = time.perf_counter() - start
  if impl != "garden":
    miou = read_scalars(os.path.join(logdir, "eval"), "miou")
    rates = read_scalars(logdir, "steps_per_sec")
  else:
    miou = read_scalars(os.path.join(logdir, "validation"), "mean_iou")
    rates = read_scalars(os.path.join(logdir, "train"), "steps_per_second")
  # The first window holds tracing and warm-up; report the steady rate.
  steady = [rates[s] for s in sorted(rates)[1:]] or list(rates.values())
  result = {"impl": impl, "variant": variant, "wall_s": round(wall, 1),
            "miou": {str(s): round(v, 4) for s, v in sorted(miou.items())},
            "steps_per_s": round(sorted(steady)[len(steady) // 2], 3)}
  print(json.dumps(result), flush=True)
  return result


def markdown(results: list) -> str:
  steps = sorted({int(s) for r in results for s in r["miou"]})
  header = (["variant", "trainer"] + [f"mIoU @ {s}" for s in steps] +
            ["median steps/s", "wall time"])
  lines = ["| " + " | ".join(header) + " |",
           "|" + "---|" * len(header)]
  for r in results:
    cells = [r["variant"], r["impl"]]
    cells += [f"{r['miou'][str(s)]:.3f}" if str(s) in r["miou"] else "-"
              for s in steps]
    minutes, seconds = divmod(int(round(r["wall_s"])), 60)
    cells += [f"{r['steps_per_s']:.2f}", f"{minutes} min {seconds:02d} s"]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main(argv):
  del argv
  os.makedirs(FLAGS.work_dir, exist_ok=True)
  tfrecord_dir = build_data(FLAGS.work_dir)
  results = []
  for variant in FLAGS.pairs:
    for impl in FLAGS.impls:
      if impl == "garden" and variant not in GARDEN_MODELS:
        print(f"[garden {variant}] skipped: the Model Garden has no such "
              "backbone.", flush=True)
        continue
      if impl == "ours_vs" and variant.startswith("resnet"):
        print(f"[ours_vs {variant}] skipped: ResNet's official initializer "
              "is already fan-in scaled.", flush=True)
        continue
      results.append(run_one(impl, variant, tfrecord_dir))
      path = os.path.join(FLAGS.work_dir, "results.json")
      with open(path + ".tmp", "w") as f:
        json.dump(results, f, indent=1)
      os.replace(path + ".tmp", path)
  print(markdown(results))


if __name__ == "__main__":
  app.run(main)
