"""No silent wrong model: bad inputs and faults get a clear answer.

Each test runs an app in a subprocess on the tiny demo data, as a user
would, and checks the exit status and the one-line message (see
docs/reliability.md for the table of cases).
"""

import dataclasses
import io
import os
import shutil
import signal
import subprocess
import sys
import threading

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from deeplab.datasets import tfrecord_io
from testing_utils import APP_ENV
from testing_utils import assert_clear_error
from testing_utils import build_demo_tfrecords
from testing_utils import DEMO_MODEL_FLAGS
from testing_utils import run_app

TIMEOUT = 240


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
  """Demo TFRecords (16 train, 4 val images of 64x64, 2 shards a split)."""
  root = tmp_path_factory.mktemp("demo")
  build_demo_tfrecords(root, num_train=8, num_val=2)
  return root / "tfrecord"


def _train_flags(dataset_dir, logdir, steps=2, *extra):
  return (*DEMO_MODEL_FLAGS, f"--dataset_dir={dataset_dir}",
          f"--train_logdir={logdir}", "--train_crop_size=32,32",
          "--train_batch_size=2", f"--training_number_of_steps={steps}",
          "--log_steps=1", "--image_summary_steps=0", *extra)


def _rewrite_split(source_dir, target_dir, split, edit, num_shards=1):
  """Copies `split`'s records into shard 0 of `num_shards`, `edit(label) ->
  label` on the decoded label PNG of each."""
  os.makedirs(target_dir, exist_ok=True)
  files = tfrecord_io.list_shards(str(source_dir), split)
  path = tfrecord_io.shard_path(str(target_dir), split, 0, num_shards)
  with tf.io.TFRecordWriter(path) as writer:
    for record in tf.data.TFRecordDataset(files):
      example = tf.train.Example.FromString(record.numpy())
      feature = example.features.feature[tfrecord_io.LABEL_ENCODED]
      label = np.array(Image.open(io.BytesIO(feature.bytes_list.value[0])))
      buffer = io.BytesIO()
      Image.fromarray(edit(label).astype(np.uint8)).save(buffer, "PNG")
      feature.bytes_list.value[0] = buffer.getvalue()
      writer.write(example.SerializeToString())
  return path


def _with_label_50(label):
  label = label.copy()
  label[:4, :4] = 50
  return label


# === Item 2: labels outside [0, num_classes) ===


@pytest.fixture(scope="module")
def label_50_dir(demo_dir, tmp_path_factory):
  target = tmp_path_factory.mktemp("label50")
  _rewrite_split(demo_dir, target, "train", _with_label_50)
  return target


def test_out_of_range_labels_in_the_pipeline(label_50_dir):
  from deeplab.core import config as config_lib  # pylint: disable=g-import-not-at-top
  from deeplab.datasets import input_pipeline  # pylint: disable=g-import-not-at-top
  from deeplab.datasets import label_checks  # pylint: disable=g-import-not-at-top
  config = config_lib.DataConfig(
      dataset="custom", ignore_label=255, dataset_dir=str(label_50_dir),
      split="train", batch_size=8, crop_size=(64, 64), is_training=False,
      num_classes=21)
  with pytest.raises(tf.errors.OpError) as raised:
    next(iter(input_pipeline.make_dataset(config)))
  message = input_pipeline.explain_error(raised.value)
  assert message.startswith("Out-of-range labels in split 'train': 16 "
                            "pixels of image train_"), message
  assert "e.g. value 50" in message and "\n" not in message
  label_checks.COUNTER.reset()
  ignored = dataclasses.replace(config, out_of_range_labels="ignore")
  _, labels = next(iter(input_pipeline.make_dataset(ignored)))
  assert (labels.numpy()[:, :4, :4] == 255).all()
  assert int(labels.numpy().max()) == 255 and 50 not in labels.numpy()
  assert (label_checks.COUNTER.examples, label_checks.COUNTER.pixels) == (
      8, 128)
  assert "128 label pixels in 8 examples" in label_checks.COUNTER.summary()


@pytest.mark.slow
def test_out_of_range_labels_stop_training_with_a_clear_error(label_50_dir,
                                                              tmp_path):
  result = run_app("train", *_train_flags(label_50_dir, tmp_path / "a"),
                   "--dataset=custom", "--num_classes=21")
  assert_clear_error(result, "Out-of-range labels", "split 'train'",
                     "16 pixels", "value 50", "outside [0, 21)",
                     "--out_of_range_labels=ignore")


def test_dataset_stats_reports_out_of_range_labels(label_50_dir):
  from deeplab.datasets import dataset_stats  # pylint: disable=g-import-not-at-top
  stats = dataset_stats.compute_stats(str(label_50_dir), "train", 21, 255)
  assert stats["out_of_range_pixels"] == 16 * 8
  assert stats["out_of_range_values"] == [50]
  assert "outside [0, 21): 128 pixels" in dataset_stats.format_stats(stats)


# === Items 2, 3, 4, 6 in one training story: lock, SIGKILL, SIGINT ===


@pytest.fixture(scope="module")
def faulty_dir(demo_dir, tmp_path_factory):
  """Train split: shard 0 has label 50 in every image, shard 1 is truncated."""
  target = tmp_path_factory.mktemp("faulty")
  _rewrite_split(demo_dir, target, "train", _with_label_50, num_shards=2)
  source = tfrecord_io.list_shards(str(demo_dir), "train")[1]
  data = open(source, "rb").read()
  truncated = tfrecord_io.shard_path(str(target), "train", 1, 2)
  with open(truncated, "wb") as f:
    f.write(data[:len(data) * 2 // 3])
  return target


def _start_train(dataset_dir, logdir, *extra):
  process = subprocess.Popen(
      [sys.executable, "-m", "deeplab.train",
       *_train_flags(dataset_dir, logdir, 1000, "--save_interval_steps=2",
                     "--dataset=custom", "--num_classes=21", *extra)],
      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
      env=APP_ENV)
  watchdog = threading.Timer(TIMEOUT, process.kill)
  watchdog.start()
  return process, watchdog


def _read_until(process, needle, seen):
  """Reads the log until a line contains `needle`; keeps all lines in seen."""
  for line in process.stderr:
    seen.append(line)
    if needle in line:
      return line
  raise AssertionError(f"no {needle!r} in the log:\n{''.join(seen)[-3000:]}")


def test_truncated_shard_is_named(faulty_dir, tmp_path):
  result = run_app("train", *_train_flags(faulty_dir, tmp_path / "t"),
                   "--dataset=custom", "--num_classes=21")
  assert_clear_error(result, "train-00001-of-00002.tfrecord is truncated",
                     "--skip_corrupt_records")
  assert not (tmp_path / "t").exists()  # Failed before writing anything.
  result = run_app("evaluate", *DEMO_MODEL_FLAGS, f"--dataset_dir={faulty_dir}",
                   "--eval_split=train", f"--checkpoint_dir={tmp_path / 'c'}",
                   f"--eval_logdir={tmp_path / 'e'}")
  assert_clear_error(result, "train-00001-of-00002.tfrecord is truncated")


@pytest.mark.slow
def test_lock_sigkill_takeover_sigint_resume(faulty_dir, tmp_path):
  logdir = tmp_path / "run"
  flags = ("--out_of_range_labels=ignore", "--skip_corrupt_records")
  first, watchdog = _start_train(faulty_dir, logdir, *flags)
  log = []
  try:
    _read_until(first, "Saved checkpoint", log)
    # A second trainer on the same logdir is refused at once.
    second = run_app("train", *_train_flags(faulty_dir, logdir), *flags,
                     "--dataset=custom", "--num_classes=21")
    assert_clear_error(second, "in use by another trainer",
                       f"pid {first.pid}")
  finally:
    first.send_signal(signal.SIGKILL)
    first.wait()
    watchdog.cancel()
  text = "".join(log)
  assert "is truncated after" in text  # --skip_corrupt_records logs it.
  assert "mapped 16 label pixels outside the class range" in text
  killed_at = max(int(n[5:-6]) for n in os.listdir(logdir)
                  if n.startswith("ckpt-") and n.endswith(".index"))

  # After kill -9 the lock is stale: a new trainer takes over and resumes.
  third, watchdog = _start_train(faulty_dir, logdir, *flags)
  log = []
  try:
    _read_until(third, "Taking over the stale lock", log)
    _read_until(third, f"at step {killed_at}", log)
    line = _read_until(third, "step ", log)
    while "/1000" not in line:
      line = _read_until(third, "step ", log)
    third.send_signal(signal.SIGINT)  # Ctrl-C: save, then exit 130.
    line = _read_until(third, "Interrupted (SIGINT) at step", log)
    third.wait()
  finally:
    third.kill()
    watchdog.cancel()
  assert third.returncode == 130, "".join(log)[-3000:]
  stopped_at = int(line.split("at step ")[1].split(";")[0])
  assert stopped_at > killed_at
  assert tf.train.latest_checkpoint(str(logdir)).endswith(
      f"ckpt-{stopped_at}")
  assert not (logdir / "train.lock").exists()


# === Item 5: inference goes on past a bad file; memory stays bounded ===


@pytest.fixture(scope="module")
def tiny_saved_model(tmp_path_factory):
  """An untrained small SavedModel (inference only needs it to run)."""
  from deeplab.core import config  # pylint: disable=g-import-not-at-top
  from deeplab.core.export import saved_model  # pylint: disable=g-import-not-at-top
  from deeplab.core.modeling import deeplab_model  # pylint: disable=g-import-not-at-top
  model = deeplab_model.build_deeplab_model(config.ModelConfig(
      model_variant="mobilenet_v2", num_classes=5, output_stride=16,
      decoder_output_stride=4, depth_multiplier=0.35, aspp_filters=16,
      decoder_filters=16, low_level_filters=8))
  return saved_model.export_saved_model(
      model, str(tmp_path_factory.mktemp("model") / "export"))


def test_inference_skips_a_bad_file_and_summarises(tiny_saved_model,
                                                   tmp_path):
  inputs = tmp_path / "in"
  inputs.mkdir()
  for name in ("a.jpg", "c.png"):
    Image.new("RGB", (40, 30), (90, 20, 200)).save(inputs / name)
  (inputs / "b.jpg").write_bytes(b"not a jpeg")
  out = tmp_path / "out"
  result = run_app("inference", f"--model_path={tiny_saved_model}",
                   f"--input={inputs}", f"--output_dir={out}",
                   "--dataset=demo")
  assert_clear_error(result, "2 image(s) written, 1 failed", "b.jpg")
  assert sorted(os.listdir(out)) == ["a.png", "a_overlay.png", "c.png",
                                     "c_overlay.png"]
  result = run_app("inference", f"--model_path={tiny_saved_model}",
                   f"--input={inputs}", f"--output_dir={tmp_path / 'ff'}",
                   "--dataset=demo", "--fail_fast")
  assert_clear_error(result, "Cannot read image", "b.jpg")
  assert not (tmp_path / "ff").exists() or not any(
      n.startswith("c") for n in os.listdir(tmp_path / "ff"))


@pytest.mark.slow
def test_inference_on_a_10000px_jpeg_stays_under_2gb(tiny_saved_model,
                                                    tmp_path):
  pixels = np.zeros((10000, 10000, 3), np.uint8)
  pixels[::7] = 200
  Image.fromarray(pixels).save(tmp_path / "big.jpg", quality=80)
  del pixels
  script = (
      "import resource, subprocess, sys\n"
      "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
      "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN)"
      ".ru_maxrss)\n"
      "sys.stderr.write(r.stderr[-3000:])\n")
  result = subprocess.run(
      [sys.executable, "-c", script, sys.executable, "-m", "deeplab.inference",
       f"--model_path={tiny_saved_model}", f"--input={tmp_path / 'big.jpg'}",
       f"--output_dir={tmp_path / 'out'}", "--dataset=demo"],
      capture_output=True, text=True, env=APP_ENV, timeout=TIMEOUT,
      check=False)
  code, peak_kib = (int(v) for v in result.stdout.split())
  assert code == 0, result.stderr
  assert peak_kib < 2 * 1024 * 1024, f"peak RSS {peak_kib / 1024:.0f} MiB"
  with Image.open(tmp_path / "out" / "big.png") as label:
    assert label.size == (10000, 10000)


# === Items 9 and 10: stale temporaries of killed writers; permissions ===


def _dead_pid():
  process = subprocess.Popen([sys.executable, "-c", "pass"])
  process.wait()
  return process.pid


def test_writers_remove_only_stale_temporaries(tmp_path, tiny_saved_model):
  from deeplab.core import io_utils  # pylint: disable=g-import-not-at-top
  from deeplab.core.export import saved_model  # pylint: disable=g-import-not-at-top
  from deeplab.core.training import logdir_lock  # pylint: disable=g-import-not-at-top
  dead, live = _dead_pid(), os.getpid()
  # io_utils: `.tmp-<pid>-...` files.
  (tmp_path / f".tmp-{dead}-x-metrics.json").write_text("{")
  (tmp_path / f".tmp-{live}-y-metrics.json").write_text("{")
  io_utils.atomic_write_json(str(tmp_path / "metrics.json"), {})
  assert not (tmp_path / f".tmp-{dead}-x-metrics.json").exists()
  assert (tmp_path / f".tmp-{live}-y-metrics.json").exists()
  # A builder's temporary shard.
  shards = tmp_path / "shards"
  shards.mkdir()
  stale = shards / f"train-00000-of-00001.tfrecord.tmp-{dead}-0badcafe"
  stale.write_bytes(b"partial")
  writer = tfrecord_io.ShardWriter([str(shards / "train-00000-of-00001"
                                               ".tfrecord")])
  writer.abort()
  assert not stale.exists()
  # An export's partial SavedModel (the name before and after this change).
  base = os.path.dirname(tiny_saved_model)
  for name in (f".tmp-1-{dead}", f".tmp-{dead}-v2", f".tmp-{live}-v3"):
    os.makedirs(os.path.join(base, name, "variables"))
  from deeplab.core import config  # pylint: disable=g-import-not-at-top
  from deeplab.core.modeling import deeplab_model  # pylint: disable=g-import-not-at-top
  saved_model.export_saved_model(deeplab_model.build_deeplab_model(
      config.ModelConfig(model_variant="mobilenet_v2", num_classes=2,
                         depth_multiplier=0.35, aspp_filters=8)), base)
  left = sorted(n for n in os.listdir(base) if n.startswith(".tmp"))
  assert left == [f".tmp-{live}-v3"]
  # A checkpoint's `ckpt-N_temp/`, under the logdir lock.
  logdir = tmp_path / "logdir"
  (logdir / "ckpt-7_temp").mkdir(parents=True)
  with logdir_lock.LogdirLock(str(logdir)):
    assert not (logdir / "ckpt-7_temp").exists()
    assert (logdir / "train.lock").exists()
  assert not (logdir / "train.lock").exists()


def test_outputs_keep_the_umask_permissions(tmp_path):
  from deeplab.core import io_utils  # pylint: disable=g-import-not-at-top
  from deeplab.core.evaluation import visualization  # pylint: disable=g-import-not-at-top
  from deeplab.datasets import build_demo_data  # pylint: disable=g-import-not-at-top
  previous = os.umask(0o022)
  try:
    io_utils.atomic_write_bytes(str(tmp_path / "graph.pb"), b"x")
    visualization.plot_per_class_iou([0.5, None], str(tmp_path / "iou.png"))
    build_demo_data.generate_demo_dataset(str(tmp_path / "demo"), num_train=1,
                                          num_val=1, image_size=32)
    os.umask(0o027)
    io_utils.atomic_write_bytes(str(tmp_path / "model.onnx"), b"x")
  finally:
    os.umask(previous)
  mode = lambda name: os.stat(tmp_path / name).st_mode & 0o777
  assert mode("graph.pb") == 0o644
  assert mode("iou.png") == 0o644
  assert mode("demo") == 0o755
  assert mode("model.onnx") == 0o640


# === Item 12: --help and --helpfull ===


def _python(*args, env=None):
  return subprocess.run([sys.executable, *args], capture_output=True,
                        text=True, timeout=TIMEOUT, env=env or APP_ENV,
                        check=False)


def test_help_shows_the_apps_own_flags_grouped_and_exits_0():
  result = _python("-m", "deeplab.inference", "--help")
  assert result.returncode == 0, result.stderr[-2000:]
  text = result.stdout
  assert text.startswith("Segments images")
  assert "Example:" in text and "Inference flags:" in text
  assert "--model_path:" in text and "--fail_fast:" in text
  for training_flag in ("--train_logdir", "--max_rotation_degrees",
                        "--model_variant"):
    assert training_flag not in text
  # The console script (`deeplab-infer`, setup.py) prints the same help.
  script = _python("-c", "import sys; sys.argv[0] = 'deeplab-infer'; "
                   "from deeplab.inference import run; run()", "--help")
  assert script.returncode == 0 and script.stdout == text

  result = _python("-m", "deeplab.train", "--help")
  assert result.returncode == 0
  titles = [line for line in result.stdout.splitlines()
            if line.endswith(" flags:")]
  assert titles == ["Data flags:", "Model flags:",
                    "Augmentation (training) flags:", "Training flags:",
                    "Evaluation flags:", "Distribution flags:"]
  assert "--out_of_range_labels:" in result.stdout
  full = _python("-m", "deeplab.train", "--helpfull")
  assert full.returncode == 0
  assert "--train_logdir:" in full.stdout and "logtostderr:" in full.stdout


# === Item 11: CUDA probe errors on CPU-only machines ===


@pytest.mark.skipif(os.path.exists("/dev/nvidia0"), reason="has a GPU")
def test_no_cuda_error_lines_on_a_cpu_only_machine():
  env = {k: v for k, v in APP_ENV.items()
         if k not in ("TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES")}
  result = _python("-c", "from deeplab import common_flags; "
                   "import tensorflow as tf; print(int(tf.constant(1) + 1))",
                   env=env)
  assert result.stdout.strip() == "2", result.stderr[-2000:]
  assert "cuInit" not in result.stderr and "E0000" not in result.stderr


# === Item 8: a full or read-only disk ===


@pytest.fixture
def tiny_tmpfs(tmp_path):
  """A 16 KiB tmpfs (needs root; skipped otherwise)."""
  mount_point = tmp_path / "tiny"
  mount_point.mkdir()
  result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs",
                           str(mount_point)], capture_output=True, check=False)
  if result.returncode:
    pytest.skip(f"cannot mount a tmpfs: {result.stderr!r}")
  yield mount_point
  subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_full_or_read_only_disk_gives_one_line(demo_dir, tiny_tmpfs):
  voc = demo_dir.parent / "voc"
  out = tiny_tmpfs / "out"
  result = run_app(
      "datasets.build_voc2012_data", f"--image_folder={voc / 'JPEGImages'}",
      f"--semantic_segmentation_folder={voc / 'SegmentationClass'}",
      f"--list_folder={voc / 'ImageSets' / 'Segmentation'}",
      f"--output_dir={out}")
  assert_clear_error(result, f"Cannot write {out}/train-", ".tfrecord (a "
                     "TFRecord shard): no space left on the device.")
  assert os.listdir(out) == []  # No partial shard, under any name.
  # A checkpoint on a full disk (TensorFlow's error, named in one line).
  from deeplab.core import io_utils  # pylint: disable=g-import-not-at-top
  checkpoint = tf.train.Checkpoint(v=tf.Variable(tf.zeros([100000])))
  with pytest.raises(tf.errors.OpError) as raised:
    checkpoint.write(str(tiny_tmpfs / "run" / "ckpt-3"))
  assert io_utils.explain_write_error(raised.value) == (
      f"Cannot write {tiny_tmpfs}/run/ckpt-3 (a checkpoint): no space left "
      "on the device.")
  # Read-only: training refuses before building anything.
  subprocess.run(["mount", "-o", "remount,ro", str(tiny_tmpfs)], check=True)
  result = run_app("train", *_train_flags(demo_dir, tiny_tmpfs / "run"))
  assert_clear_error(result, f"Cannot write {tiny_tmpfs}/run",
                     "the filesystem is read-only")


# === Item 11: smaller cases ===


def test_negative_batch_size_is_one_line_naming_the_flag(tmp_path):
  result = run_app("train", *_train_flags(tmp_path, tmp_path / "x"),
                   "--train_batch_size=-4")
  assert_clear_error(result, "--train_batch_size=-4")


@pytest.mark.slow
def test_nan_before_any_checkpoint_says_so(tiny_model_config, tmp_path):
  from deeplab.core import config as config_lib  # pylint: disable=g-import-not-at-top
  from deeplab.core.training import factory  # pylint: disable=g-import-not-at-top

  def nan_input_fn(input_context=None):
    del input_context
    images = np.full((2, 33, 33, 3), np.nan, np.float32)
    labels = np.ones((2, 33, 33), np.int32)
    return tf.data.Dataset.from_tensors(({"image": images}, labels)).repeat()

  model_dir = str(tmp_path / "train")
  train_config = config_lib.TrainConfig.from_flat(
      train_logdir=model_dir, training_number_of_steps=2, optimizer="adam",
      save_interval_steps=5, log_steps=1, image_summary_steps=0)
  runner = factory.make_runner(tiny_model_config, model_dir, 255,
                               train_config=train_config)
  with pytest.raises(FloatingPointError) as raised:
    runner.train(nan_input_fn, max_steps=2)
  assert "None" not in str(raised.value)
  assert "No checkpoint was saved before it" in str(raised.value)


def test_per_class_plot_marks_absent_classes(tmp_path, monkeypatch):
  from deeplab.core.evaluation import visualization  # pylint: disable=g-import-not-at-top
  drawn = {}
  original = visualization.new_figure

  def recording_new_figure(*args, **kwargs):
    figure, axes = original(*args, **kwargs)
    drawn["axes"] = axes
    return figure, axes

  monkeypatch.setattr(visualization, "new_figure", recording_new_figure)
  visualization.plot_per_class_iou([0.5, None, float("nan"), 0.0],
                                   str(tmp_path / "iou.png"))
  axes = drawn["axes"]
  bars = {round(p.get_x() + p.get_width() / 2): p.get_height()
          for p in axes.patches}
  assert bars == {0: 0.5, 3: 0.0}  # Classes 1 and 2 get no bar at 0.
  labels = [t for t in axes.texts if t.get_text() == "absent"]
  assert sorted(round(t.get_position()[0]) for t in labels) == [1, 2]


def test_only_the_chief_takes_the_lock(monkeypatch):
  import json  # pylint: disable=g-import-not-at-top
  from deeplab.core.training import logdir_lock  # pylint: disable=g-import-not-at-top
  cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
  for task, chief in ((None, True), ({"type": "worker", "index": 0}, True),
                      ({"type": "worker", "index": 1}, False)):
    config = {"cluster": cluster, "task": task} if task else {}
    monkeypatch.setenv("TF_CONFIG", json.dumps(config))
    assert logdir_lock.is_chief_task() is chief
  monkeypatch.setenv("TF_CONFIG", json.dumps({
      "cluster": dict(cluster, chief=["127.0.0.1:3"]),
      "task": {"type": "worker", "index": 0}}))
  assert not logdir_lock.is_chief_task()
