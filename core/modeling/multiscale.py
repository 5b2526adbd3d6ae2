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

Used by evaluation (`model_fn` EVAL mode, the Keras predictor) and by every
export format, so all of them compute the same thing.

Example:

  probabilities, logits = multiscale.predict(
      model, images, scales=(0.75, 1.0, 1.25), add_flipped_images=True)
"""

import contextlib
import weakref
from typing import Callable, Optional, Sequence, Tuple

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


def _resize(images: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
  return tf.raw_ops.ResizeBilinear(images=images, size=size,
                                   align_corners=True,
                                   half_pixel_centers=False)


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
  return _resize(logits, tf.shape(images)[1:3])


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
    For a single pass (scale 1, no flip) `logits` are the network's logits;
    otherwise they are the log of the averaged probabilities, whose softmax
    and argmax are those of the average.
  """
  scales = validate_scales(scales)
  images = tf.cast(images, tf.float32)
  size = tf.shape(images)[1:3]
  if is_single_pass(scales, add_flipped_images):
    logits = upsampled_logits(model, images)
    return tf.nn.softmax(logits, axis=-1), logits

  logits_and_stride = logits_model(model)
  total = None
  count = 0
  for scale in scales:
    scaled = images
    if scale != 1.0:
      scaled = _resize(images, tf.maximum(scale_dimension(size, scale), 1))
    for flip in ((False, True) if add_flipped_images else (False,)):
      inputs = tf.reverse(scaled, axis=[2]) if flip else scaled
      if logits_and_stride is None:
        logits = deeplab_model.main_logits(model(inputs, training=False))
      else:
        raw_model, stride = logits_and_stride
        with image_pooling_window_at(model, scale):
          logits = deeplab_model.main_logits(
              raw_model(inputs, training=False))
        # Official multi_scale_logits: to the (largest) scale's logit size.
        logits = _resize(logits, scale_dimension(size, max(1.0, scale) /
                                                 stride))
      if flip:
        logits = tf.reverse(logits, axis=[2])
      probabilities = tf.nn.softmax(_resize(logits, size), axis=-1)
      total = probabilities if total is None else total + probabilities
      count += 1
  probabilities = total / float(count)
  # Clipped so that log() stays finite where a class got probability 0.
  logits = tf.math.log(tf.maximum(probabilities, 1e-12))
  return probabilities, logits
