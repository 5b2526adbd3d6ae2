"""Multi-scale and left-right-flip inference, as official DeepLab does it.

Official `predict_labels_multi_scale` runs the network once per scale (and
once more on the flipped image when `add_flipped_images`) on the image
resized to `scale_dimension(size, scale)` = `int((size - 1) * scale + 1)`.
`multi_scale_logits` resizes each scale's logits (at feature resolution)
to `scale_dimension(size, max(1, scale) / logits_output_stride)`, and
`predict_labels_multi_scale` resizes that to the input size (both
align-corners bilinear), takes the softmax of each, and averages the
probabilities. The label is the argmax of that average. For our models
(`deeplab_model.build_deeplab_model`) this module reproduces both resizes
from the logits before `upsample_logits`; other callables, which give
input-resolution logits only, get one resize.

`predict_labels` is what evaluation (`model_fn` EVAL mode,
`model_eval`, the Keras predictor), visualisation and every export format
compute, so all of them agree. Its single pass follows the model's official
`prediction_with_upsampled_logits` and `image_pyramid`/`merge_method`
(`pyramid_logits`, official `multi_scale_logits`, also used for training).

Example:

  probabilities, logits = multiscale.predict(
      model, images, scales=(0.75, 1.0, 1.25), add_flipped_images=True)
"""

import contextlib
import weakref
from typing import Callable, Dict, Optional, Sequence, Tuple

import keras
import tensorflow as tf

from deeplab.core.modeling import deeplab_model
from deeplab.core.modeling import layers as deeplab_layers


def validate_scales(scales: Sequence[float], flag_name: str = "eval_scales"
                    ) -> Tuple[float, ...]:
  """Returns the scales as a tuple of positive floats.

  Raises:
    ValueError: naming the flag, when empty or not positive.
  """
  try:
    scales = tuple(float(s) for s in (scales or ()))
  except (TypeError, ValueError):
    raise ValueError(f"--{flag_name} expects numbers, got {scales!r}.") from None
  if not scales or min(scales) <= 0:
    raise ValueError(
        f"--{flag_name} expects one or more positive scales, got "
        f"{list(scales)}.")
  return scales


def is_single_pass(scales: Sequence[float], add_flipped_images: bool) -> bool:
  """True when inference is one plain forward pass."""
  return tuple(float(s) for s in scales) == (1.0,) and not add_flipped_images


def scale_dimension(dim: tf.Tensor, scale: float) -> tf.Tensor:
  """Official `utils.scale_dimension`: int((dim - 1) * scale + 1)."""
  return tf.cast((tf.cast(dim, tf.float32) - 1.0) * scale + 1.0, tf.int32)


_LOGITS_MODELS = weakref.WeakKeyDictionary()


def logits_model(model) -> Optional[Tuple[Callable, int]]:
  """(model of the logits before `upsample_logits`, their stride), or None
  when `model` is not one of ours (then its outputs are used as they are).

  Cached per model (weakly, and not as an attribute, which Keras would
  track into checkpoints), so that a traced function builds it once.
  """
  cached = _LOGITS_MODELS.get(model)
  if cached is not None:
    return cached
  stride = getattr(model, "logits_output_stride", None)
  if not isinstance(model, keras.Model) or stride is None:
    return None
  try:
    logits = deeplab_model.logits_before_upsampling(model)
  except ValueError:
    return None
  _LOGITS_MODELS[model] = (logits, int(stride))
  return _LOGITS_MODELS[model]


@contextlib.contextmanager
def image_pooling_window_at(model, scale: float):
  """Within it, `model`'s image pooling uses its window at `scale`.

  Official `multi_scale_logits` scales `crop_size` and
  `image_pooling_crop_size` with the image, so the ASPP (or LR-ASPP) pooling
  window is `scale_dimension(scale_dimension(crop, scale), 1 / OS)`. Our
  layers read their `pool_size` when called, so a traced call at each scale
  sees that scale's window. A model without a pooling crop is unchanged.
  """
  crop = getattr(model, "image_pooling_crop_size", None)
  layers = [layer for layer in getattr(model, "layers", ())
            if getattr(layer, "pool_size", None) is not None]
  if not crop or scale == 1.0 or not layers:
    yield
    return
  window = deeplab_layers.image_pooling_window(crop, model.output_stride,
                                               scale)
  saved = [layer.pool_size for layer in layers]
  try:
    for layer in layers:
      layer.pool_size = window
    yield
  finally:
    for layer, size in zip(layers, saved):
      layer.pool_size = size


def upsampled_logits(model, images: tf.Tensor) -> tf.Tensor:
  """One forward pass: float32 logits [B, H, W, C] at the input size.

  The labels are their argmax: softmax is monotonic, so serving graphs that
  want labels only skip it (official `predict_labels` also takes the argmax
  of the resized logits).
  """
  images = tf.cast(images, tf.float32)
  logits = deeplab_model.main_logits(model(images, training=False))
  if logits_model(model) is not None:
    # Ours end in `upsample_logits`, at the input size already: a second
    # (identity) resize would cost a full-resolution pass in every format.
    return logits
  return deeplab_layers.resize_bilinear(logits, tf.shape(images)[1:3])


def _image_at(images: tf.Tensor, size: tf.Tensor, scale: float) -> tf.Tensor:
  """`images` resized to `scale_dimension(size, scale)` (official
  `multi_scale_logits`); themselves at scale 1."""
  if scale == 1.0:
    return images
  return deeplab_layers.resize_bilinear(
      images, tf.maximum(scale_dimension(size, scale), 1))


def _scaled_logits(model, raw_model, images: tf.Tensor, scale: float,
                   logits_size: tf.Tensor, training: bool = False
                   ) -> tf.Tensor:
  """The logits before upsampling of `images` (already at `scale`), with
  that scale's image-pooling window, resized to `logits_size`."""
  with image_pooling_window_at(model, scale):
    logits = deeplab_model.main_logits(raw_model(images, training=training))
  return deeplab_layers.resize_bilinear(logits, logits_size)


MERGED_LOGITS = "merged_logits"  # Official model.MERGED_LOGITS_SCOPE.


def pyramid_logits(model, images: tf.Tensor,
                   image_pyramid: Optional[Sequence[float]] = None,
                   merge_method: str = "max", training: bool = False
                   ) -> Dict[str, tf.Tensor]:
  """Official `multi_scale_logits`: logits per input scale, and merged.

  Each scale runs on the image resized to `scale_dimension(size, scale)`;
  its logits are resized to `scale_dimension(size, max(1, largest scale) /
  logits_output_stride)` and merged by max or mean over scales.

  Args:
    model: A model of `deeplab_model.build_deeplab_model`.
    images: float32 [B, H, W, 3] pixels.
    image_pyramid: Input scales; None is (1.0,).
    merge_method: `max` or `avg`.
    training: Run in training mode (BatchNorm, dropout).

  Returns:
    {`merged_logits`: float32 [B, h, w, C]}, plus `logits_%.2f` per scale
    when there are several (official keys; training puts a loss on each).

  Raises:
    ValueError: when `model` is not one of ours (no logits before
      upsampling).
  """
  logits_and_stride = logits_model(model)
  if logits_and_stride is None:
    raise ValueError("image_pyramid and prediction_with_upsampled_logits="
                     "False need a model of build_deeplab_model.")
  raw_model, stride = logits_and_stride
  pyramid = tuple(image_pyramid or (1.0,))
  images = tf.cast(images, tf.float32)
  size = tf.shape(images)[1:3]
  logits_size = scale_dimension(size, max(1.0, max(pyramid)) / stride)
  scales_to_logits = {}
  for scale in pyramid:
    scaled = _image_at(images, size, scale)
    logits = _scaled_logits(model, raw_model, scaled, scale, logits_size,
                            training)
    if len(pyramid) == 1:
      return {MERGED_LOGITS: logits}
    scales_to_logits[f"logits_{scale:.2f}"] = logits
  merge = tf.reduce_max if merge_method == "max" else tf.reduce_mean
  scales_to_logits[MERGED_LOGITS] = merge(
      tf.stack(list(scales_to_logits.values()), axis=-1), axis=-1)
  return scales_to_logits


def _single_pass(model, images: tf.Tensor, with_probabilities: bool):
  """(labels, probabilities, logits) of official `predict_labels` with the
  model's `image_pyramid`, `merge_method` and
  `prediction_with_upsampled_logits` (attributes set from its config)."""
  pyramid = getattr(model, "image_pyramid", None)
  upsample = getattr(model, "prediction_with_upsampled_logits", True)
  size = tf.shape(images)[1:3]
  if not pyramid and upsample:
    logits = upsampled_logits(model, images)  # One pass, as before.
  else:
    merged = pyramid_logits(model, images, pyramid,
                            getattr(model, "merge_method", "max"))
    merged = merged[MERGED_LOGITS]
  if upsample:
    if pyramid:
      logits = deeplab_layers.resize_bilinear(merged, size)
    labels = tf.argmax(logits, -1, output_type=tf.int32)
    if not with_probabilities:
      return labels, None, None
    return labels, tf.nn.softmax(logits, axis=-1), logits
  # Official: argmax at the logits' stride, labels resized by nearest
  # neighbour with corners aligned; the softmax resized bilinearly.
  labels = resize_labels_nearest(
      tf.argmax(merged, -1, output_type=tf.int32), size)
  if not with_probabilities:
    return labels, None, None
  probabilities = deeplab_layers.resize_bilinear(
      tf.nn.softmax(merged, axis=-1), size)
  return labels, probabilities, _log(probabilities)


def _nearest_indices(in_size: tf.Tensor, out_size: tf.Tensor) -> tf.Tensor:
  """Source index of each output row (or column) of TF's nearest-neighbour
  resize with align_corners: roundf(i * float((in - 1) / (out - 1))),
  capped at in - 1, in the same float32 arithmetic as its kernel."""
  scale = (tf.cast(in_size - 1, tf.float32) /
           tf.cast(tf.maximum(out_size - 1, 1), tf.float32))
  position = tf.cast(tf.range(out_size), tf.float32) * scale
  floor = tf.floor(position)
  # roundf: halves away from zero (tf.round would round them to even).
  index = tf.cast(floor, tf.int32) + tf.cast(position - floor >= 0.5,
                                             tf.int32)
  return tf.minimum(index, in_size - 1)


def resize_labels_nearest(labels: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
  """int32 labels [B, h, w] resized to `size` like TF1
  `resize_nearest_neighbor(..., align_corners=True)` (official
  `predict_labels`), with two gathers: TFLite has no int32 nearest resize,
  and every format has gathers."""
  shape = tf.shape(labels)
  rows = _nearest_indices(shape[1], size[0])
  columns = _nearest_indices(shape[2], size[1])
  return tf.gather(tf.gather(labels, rows, axis=1), columns, axis=2)


def _log(probabilities: tf.Tensor) -> tf.Tensor:
  """Logits whose softmax is `probabilities` (clipped so that log() stays
  finite where a class got probability 0)."""
  return tf.math.log(tf.maximum(probabilities, 1e-12))


def predict_labels(model, images: tf.Tensor,
                   scales: Sequence[float] = (1.0,),
                   add_flipped_images: bool = False,
                   with_probabilities: bool = True
                   ) -> Tuple[tf.Tensor, Optional[tf.Tensor],
                              Optional[tf.Tensor]]:
  """What every evaluation, visualisation and export predicts.

  A single pass (scale 1, no flip) is official `predict_labels`, with the
  model's `image_pyramid`/`merge_method` and `prediction_with_upsampled_
  logits`; several scales or flips are official `predict_labels_multi_
  scale` (`predict`), which ignores those three, as official does.

  Args:
    model: As in `predict`.
    images: Pixels [B, H, W, 3] in 0..255.
    scales: Input scales (official `eval_scales`).
    add_flipped_images: Also run every scale on the flipped image.
    with_probabilities: Also return probabilities and logits; a single
      pass without them never computes a full-resolution softmax.

  Returns:
    (labels int32 [B, H, W], probabilities, logits), both float32
    [B, H, W, C] (the softmax of `logits` is `probabilities`), or None
    without `with_probabilities`.
  """
  scales = validate_scales(scales)
  images = tf.cast(images, tf.float32)
  if is_single_pass(scales, add_flipped_images):
    return _single_pass(model, images, with_probabilities)
  probabilities, logits = _multi_pass(model, images, scales,
                                      add_flipped_images)
  labels = tf.argmax(probabilities, -1, output_type=tf.int32)
  if not with_probabilities:
    return labels, None, None
  return labels, probabilities, logits


def predict(model, images: tf.Tensor, scales: Sequence[float] = (1.0,),
            add_flipped_images: bool = False) -> Tuple[tf.Tensor, tf.Tensor]:
  """Runs `model` over scales and flips; averages the softmax.

  Args:
    model: Callable mapping float32 [B, H, W, 3] pixels (0..255) to logits
      [B, H', W', C] (any resolution; resized to the input size here).
    images: float32 [B, H, W, 3] pixels in 0..255, any H and W.
    scales: Input scales, e.g. (0.5, 0.75, 1.0, 1.25, 1.5, 1.75) for VOC.
    add_flipped_images: Also run every scale on the left-right flipped image.

  Returns:
    (probabilities, logits), both float32 [B, H, W, C] at the input size.
    For a single pass (scale 1, no flip) `logits` are the network's logits
    (see `predict_labels` for the model's single-pass options);
    otherwise they are the log of the averaged probabilities, whose softmax
    and argmax are those of the average. Labels: `predict_labels`.
  """
  _, probabilities, logits = predict_labels(model, images, scales,
                                            add_flipped_images)
  return probabilities, logits


def _multi_pass(model, images: tf.Tensor, scales: Sequence[float],
                add_flipped_images: bool) -> Tuple[tf.Tensor, tf.Tensor]:
  """(averaged probabilities, their log) over scales and flips."""
  size = tf.shape(images)[1:3]
  logits_and_stride = logits_model(model)
  total = None
  count = 0
  for scale in scales:
    scaled = _image_at(images, size, scale)
    for flip in ((False, True) if add_flipped_images else (False,)):
      inputs = tf.reverse(scaled, axis=[2]) if flip else scaled
      if logits_and_stride is None:
        logits = deeplab_model.main_logits(model(inputs, training=False))
      else:
        raw_model, stride = logits_and_stride
        # Official multi_scale_logits: to the (largest) scale's logit size.
        logits = _scaled_logits(
            model, raw_model, inputs, scale,
            scale_dimension(size, max(1.0, scale) / stride))
      if flip:
        logits = tf.reverse(logits, axis=[2])
      probabilities = tf.nn.softmax(
          deeplab_layers.resize_bilinear(logits, size), axis=-1)
      total = probabilities if total is None else total + probabilities
      count += 1
  probabilities = total / float(count)
  return probabilities, _log(probabilities)
