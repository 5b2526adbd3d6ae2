"""The official side of bench/official_parity.py: runs in .venv-official.

Runs official research/deeplab (TF 2.15 + tf-slim, TF1 graph mode; set up by
scripts/ensure_official_venv.sh) for one request and writes what it
computed. Not importable from our venv and not part of the product.

Requests (a JSON list in the file argv[1]), each:
  kind: "model" or "preprocess".
  model: flags (official common.py flag names), atrous_rates, output_stride,
    num_classes, crop (h, w), eval_scales, add_flipped_images, seed,
    images (.npy, float32 [N, h, w, 3]: N >= 2, image 0 is the test image,
    all of them calibrate BatchNorm), out_dir.
  preprocess: model_variant, image (.npy uint8 [h, w, 3]), label (.npy
    uint8 [h, w, 1]), crop (h, w), min_resize_value, max_resize_value,
    out_dir.

Model: builds the graph, gives it random weights with realistic BatchNorm
statistics (moving mean/variance = the batch moments of the calibration
images in one training-mode pass, then perturbed; random gamma, beta and
biases), saves a TF1 checkpoint with tf.train.Saver packed like a model-zoo
tarball (`<name>/model.ckpt.*` in a .tar.gz), and writes `official.npz`:
logits (merged logits at feature resolution), upsampled (logits resized to
the image, as `predict_labels`), labels, ms_probabilities/ms_labels
(`predict_labels_multi_scale` averaged softmax and argmax), num_variables.
"""

import json
import os
import sys
import tarfile
import types

import tfshim  # pylint: disable=unused-import  (must precede tensorflow)
import numpy as np
import tensorflow.compat.v1 as tf

tf.disable_eager_execution()

from absl import flags  # pylint: disable=g-import-not-at-top
from tensorflow.python.autograph.core import ag_ctx  # pylint: disable=g-import-not-at-top
from deeplab import common  # pylint: disable=g-import-not-at-top
from deeplab import model  # pylint: disable=g-import-not-at-top
from deeplab.core import dense_prediction_cell  # pylint: disable=g-import-not-at-top
from deeplab.core import nas_network  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS


class _HParams:
  """Stand-in for `contrib_training.HParams` (TF1 contrib, gone in TF 2):
  what official nas_network.py uses of it, attributes and `set_hparam`."""

  def __init__(self, **values):
    self.__dict__.update(values)

  def set_hparam(self, name, value):
    setattr(self, name, value)

  def __repr__(self):
    return f"HParams({self.__dict__})"


# The patched tree sets `contrib_training = None` (patch_for_tf215.sh P4).
nas_network.contrib_training = types.SimpleNamespace(HParams=_HParams)


def _pin_dense_prediction_cell_scope():
  """Official `DensePredictionCell.build_cell` opens its scope by default
  name, which TF uniquifies at every build: in a graph built once (train.py,
  eval.py, export_model.py) it is `meta_architecture`, but this oracle
  builds three graphs, and the second would get fresh `meta_architecture_1`
  variables. Pin the name so that every build shares the one set."""
  original = dense_prediction_cell.DensePredictionCell.build_cell

  def build_cell(self, features, *args, scope=None, **kwargs):
    return original(self, features, *args,
                    scope=scope or "meta_architecture", **kwargs)

  dense_prediction_cell.DensePredictionCell.build_cell = build_cell


_pin_dense_prediction_cell_scope()


def _parse_flags(values):
  """Sets the official flags to `values`, the others to their defaults (a
  request must not inherit the flags of the one before)."""
  FLAGS.unparse_flags()
  argv = ["oracle"]
  for name, value in sorted(values.items()):
    if isinstance(value, (list, tuple)):
      if name in ("multi_grid", "image_pyramid"):
        argv += [f"--{name}={v}" for v in value]
      else:
        argv.append(f"--{name}={','.join(str(v) for v in value)}")
    elif isinstance(value, bool):
      argv.append(f"--{name}" if value else f"--no{name}")
    else:
      argv.append(f"--{name}={value}")
  FLAGS(argv)


def _batch_moments(graph):
  """BatchNorm scope -> (batch mean, batch variance) tensors of the
  training-mode graph (fused kernels: outputs 1 and 2)."""
  moments = {}
  for op in graph.get_operations():
    if op.type.startswith("FusedBatchNorm") and "Grad" not in op.type:
      if op.get_attr("is_training"):
        moments[op.name.rsplit("/", 1)[0]] = (op.outputs[1], op.outputs[2])
  return moments


def _random_values(rng):
  """Random gamma, beta and biases (initialisers give 1, 0 and 0)."""
  values = {}
  for var in tf.global_variables():
    shape = var.shape.as_list()
    name = var.op.name
    if name.endswith("/gamma"):
      values[var] = rng.uniform(0.5, 1.5, shape)
    elif name.endswith("/beta") or name.endswith("/biases"):
      values[var] = rng.normal(0., 0.2, shape)
  return values


def _calibrated_values(sess, images_ph, images, moments, rng):
  """Moving statistics := perturbed batch moments of `images`."""
  batch = sess.run(moments, {images_ph: images})
  by_name = {v.op.name: v for v in tf.global_variables()}
  values = {}
  for scope, (mean, variance) in batch.items():
    std = np.sqrt(variance)
    values[by_name[scope + "/moving_mean"]] = (
        mean + 0.1 * std * rng.standard_normal(mean.shape))
    values[by_name[scope + "/moving_variance"]] = (
        variance * np.exp(rng.uniform(-0.2, 0.2, variance.shape)))
  missing = [n for n in by_name if n.endswith("/moving_mean") and
             n[:-len("/moving_mean")] not in batch]
  if missing:
    raise RuntimeError(f"BatchNorm layers not calibrated: {missing[:5]}")
  return values


def _assign(sess, values):
  """Sets every variable in `values` in one run (a run per variable would
  prune and optimise the graph once per variable)."""
  sess.run([v.initializer for v in values],
           {v.initial_value: np.asarray(x, np.float32)
            for v, x in values.items()})


def run_model(request):
  _parse_flags(request["flags"])
  # Official nas_network reads `net.shape[1].value` (TF1 shapes).
  if request["flags"].get("model_variant", "").startswith("nas"):
    tf.disable_v2_tensorshape()
  else:
    tf.enable_v2_tensorshape()
  images = np.load(request["images"]).astype(np.float32)
  height, width = request["crop"]
  options = common.ModelOptions(
      outputs_to_num_classes={"semantic": request["num_classes"]},
      crop_size=[height, width],
      atrous_rates=request.get("atrous_rates"),
      output_stride=request["output_stride"])
  rng = np.random.default_rng(request.get("seed", 0))
  tf.set_random_seed(request.get("seed", 0))
  out_dir = request["out_dir"]
  # Autograph conversion of every slim layer call makes graph building
  # minutes long; the layers have no data-dependent control flow.
  with tf.Graph().as_default() as graph, ag_ctx.ControlStatusCtx(
      status=ag_ctx.Status.DISABLED):
    images_ph = tf.placeholder(tf.float32, [None, height, width, 3])
    # Training-mode pass first: it creates the variables; the eval graphs
    # below reuse them (multi_scale_logits uses AUTO_REUSE).
    model.multi_scale_logits(images_ph, options, image_pyramid=[1.0],
                             is_training=True, fine_tune_batch_norm=True)
    moments = _batch_moments(graph)
    predictions = model.predict_labels(images_ph, options)
    # labels = argmax(upsampled), upsampled = resize(merged logits).
    upsampled = predictions["semantic"].op.inputs[0]
    logits = upsampled.op.inputs[0]
    multi = model.predict_labels_multi_scale(
        images_ph, options, eval_scales=request["eval_scales"],
        add_flipped_images=request["add_flipped_images"])
    # The averaged softmax is the input of the argmax.
    ms_probabilities = multi["semantic"].op.inputs[0]
    tf.train.get_or_create_global_step()
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      _assign(sess, _random_values(rng))
      _assign(sess, _calibrated_values(sess, images_ph, images, moments, rng))
      ckpt_dir = os.path.join(out_dir, "zoo", request["name"])
      os.makedirs(ckpt_dir, exist_ok=True)
      tf.train.Saver().save(sess, os.path.join(ckpt_dir, "model.ckpt"),
                            write_meta_graph=False)
      test = images[:1]
      out = sess.run({"logits": logits, "upsampled": upsampled,
                      "labels": predictions["semantic"],
                      "ms_probabilities": ms_probabilities,
                      "ms_labels": multi["semantic"]}, {images_ph: test})
  tarball = os.path.join(out_dir, request["name"] + ".tar.gz")
  with tarfile.open(tarball, "w:gz") as tar:
    tar.add(ckpt_dir, arcname=request["name"])
  num_variables = len([v for v in tf.train.list_variables(
      os.path.join(ckpt_dir, "model.ckpt")) if v[0] != "global_step"])
  np.savez(os.path.join(out_dir, "official.npz"), num_variables=num_variables,
           **out)


def run_preprocess(request):
  from deeplab import input_preprocess  # pylint: disable=g-import-not-at-top
  image = np.load(request["image"])
  label = np.load(request["label"])
  height, width = request["crop"]
  with tf.Graph().as_default():
    _, processed, processed_label = input_preprocess.preprocess_image_and_label(
        tf.constant(image), tf.constant(label), crop_height=height,
        crop_width=width, min_resize_value=request.get("min_resize_value"),
        max_resize_value=request.get("max_resize_value"), is_training=False,
        model_variant=request["model_variant"])
    with tf.Session() as sess:
      out_image, out_label = sess.run([processed, processed_label])
  np.savez(os.path.join(request["out_dir"], "official.npz"), image=out_image,
           label=out_label)


def main():
  """Runs every request of the JSON list in argv[1] (one TF import)."""
  with open(sys.argv[1], encoding="utf-8") as f:
    requests = json.load(f)
  for request in requests:
    {"model": run_model, "preprocess": run_preprocess}[request["kind"]](
        request)
    print(f"done {request['out_dir']}", flush=True)


if __name__ == "__main__":
  main()
