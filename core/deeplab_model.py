"""Builds the DeepLabv3+ Keras model from a `ModelConfig`.

raw pixels -> preprocessing -> backbone -> ASPP -> [decoder] -> logits
-> bilinear upsampling to the input size.

Layer names (top level of the returned model):

* `image` (input), `preprocess`;
* the backbone's own layers (Keras Applications names for mobilenet_v2, so
  `model.load_weights(imagenet_h5, by_name=True, skip_mismatch=True)` loads
  ImageNet weights straight into the DeepLab model);
* `aspp`, `decoder` (absent without decoder), `logits` (the 1x1 conv with
  bias: the official "last layer" to skip when fine-tuning with another
  number of classes), `upsample_logits`.
"""

from typing import Sequence

from absl import logging
import keras

from deeplab.core import aspp as aspp_lib
from deeplab.core import config as config_lib
from deeplab.core import decoder as decoder_lib
from deeplab.core import layers as deeplab_layers
from deeplab.core import model_variants

LOGITS_LAYER = "logits"
# Layers that official `last_layers_contain_logits_only=False` treats as
# "last layers" (not restored when the number of classes changes).
LAST_LAYERS = ("aspp", "decoder", LOGITS_LAYER)


def build_deeplab_model(config: config_lib.ModelConfig,
                        input_shape: Sequence = (None, None, 3),
                        name: str = "deeplab") -> keras.Model:
  """Builds DeepLabv3+ (or v3 without decoder) as a functional Keras model.

  Args:
    config: What to build.
    input_shape: (height, width, 3); None for dynamic height/width.
    name: Name of the Keras model.

  Returns:
    A model mapping float32 images in [0, 255], [batch, H, W, 3], to float32
    logits at the input resolution, [batch, H, W, num_classes]. Call it with
    `training=True` to train BatchNorm and dropout.

  Raises:
    ValueError: on an unknown `config.model_variant`.
  """
  variant = model_variants.get_model_variant(config.model_variant)
  bn_args = dict(
      batch_norm_momentum=config.batch_norm_momentum,
      batch_norm_epsilon=config.batch_norm_epsilon,
      weight_decay=config.weight_decay,
      sync_batch_norm=config.sync_batch_norm)

  # === Encoder ===
  images = keras.Input(shape=tuple(input_shape), dtype="float32", name="image")
  x = deeplab_layers.ImagePreprocessing(
      variant.preprocessing, name="preprocess")(images)
  endpoints = variant.backbone_builder(x, config)
  features = aspp_lib.ASPP(
      filters=config.aspp_filters,
      atrous_rates=config.atrous_rates,
      use_separable_conv=config.aspp_with_separable_conv,
      image_pooling=config.add_image_level_feature,
      dropout_rate=config.aspp_dropout_rate,
      name="aspp",
      **bn_args)(endpoints["final"])

  # === Decoder ===
  low_level_name = None
  if config.decoder_output_stride is not None:
    low_level_name = variant.decoder_endpoints.get(config.decoder_output_stride)
    if low_level_name is None:
      logging.warning(
          "Model variant %s has no decoder endpoint at stride %d (it has %s); "
          "building without decoder.", variant.name,
          config.decoder_output_stride, sorted(variant.decoder_endpoints))
  if low_level_name is not None:
    features = decoder_lib.DeepLabV3PlusDecoder(
        filters=config.decoder_filters,
        low_level_filters=config.low_level_filters,
        use_separable_conv=config.decoder_use_separable_conv,
        name="decoder",
        **bn_args)([features, endpoints[low_level_name]])

  # === Head ===
  logits = keras.layers.Conv2D(
      config.num_classes, 1, use_bias=True,
      kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.01),
      kernel_regularizer=deeplab_layers.l2_regularizer(config.weight_decay),
      name=LOGITS_LAYER)(features)
  # float32 even under a mixed-precision policy: losses and argmax want it.
  outputs = deeplab_layers.ResizeBilinear(
      align_corners=True, dtype="float32",
      name="upsample_logits")([logits, images])
  return keras.Model(images, outputs, name=name)
