"""Builds the DeepLabv3+ Keras model from a `ModelConfig`.

raw pixels -> preprocessing -> backbone -> ASPP -> [decoder] -> logits
[-> boundary refinement] -> bilinear upsampling to the input size; or, with
`head=lr_aspp`, backbone -> Lite R-ASPP (logits) -> upsampling.

Layer names (top level of the returned model):

* `image` (input), `preprocess`;
* the backbone's own layers (Keras Applications names for mobilenet_v2, so
  `model.load_weights(imagenet_h5, by_name=True, skip_mismatch=True)` loads
  ImageNet weights straight into the DeepLab model);
* `aspp` (or `dense_prediction_cell` with `--dense_prediction_cell_json`),
  `decoder` (absent without decoder), `logits` (the 1x1 conv with
  bias: the official "last layer" to skip when fine-tuning with another
  number of classes; absent when `decoder_output_is_logits`, and the whole
  LR-ASPP head with `head=lr_aspp`), `logits_refinement` (optional
  boundary refinement), `upsample_logits`;
* with `aux_head`: `aux_head` (the auxiliary head on the variant's
  `aux_endpoint`) and `upsample_aux_logits`; the model then returns
  `[logits, aux_logits]`.
"""

from typing import Optional, Sequence, Tuple

from absl import logging
import keras
import tensorflow as tf

from deeplab.core import config as config_lib
from deeplab.core.modeling import layers as deeplab_layers
from deeplab.core.modeling import model_variants
from deeplab.core.modeling import quantize
from deeplab.core.modeling.heads import aspp as aspp_lib
from deeplab.core.modeling.heads import aux_head as aux_head_lib
from deeplab.core.modeling.heads import boundary_refinement
from deeplab.core.modeling.heads import decoder as decoder_lib
from deeplab.core.modeling.heads import dense_prediction_cell as dpc_lib
from deeplab.core.modeling.heads import lr_aspp as lr_aspp_lib

LOGITS_LAYER = "logits"
# The dense prediction cell, in place of ASPP (--dense_prediction_cell_json).
DPC_LAYER = "dense_prediction_cell"
# The last layer: bilinear upsampling of the logits to the input size.
UPSAMPLE_LAYER = "upsample_logits"
UPSAMPLE_AUX_LAYER = "upsample_aux_logits"
# Optional boundary refinement of the logits (as many channels as classes).
REFINEMENT_LAYER = "logits_refinement"
# Optional auxiliary head (training only); its classifier has num_classes
# channels.
AUX_HEAD_LAYER = "aux_head"
# Layers that official `last_layers_contain_logits_only=False` treats as
# "last layers" (not restored when the number of classes changes).
LAST_LAYERS = ("aspp", DPC_LAYER, "decoder", LOGITS_LAYER, REFINEMENT_LAYER,
               AUX_HEAD_LAYER)
# Layers whose weights depend on num_classes: what official
# `last_layers_contain_logits_only=True` leaves out when fine-tuning.
CLASS_DEPENDENT_LAYERS = (LOGITS_LAYER, REFINEMENT_LAYER, AUX_HEAD_LAYER)


def split_outputs(outputs) -> Tuple[tf.Tensor, Optional[tf.Tensor]]:
  """(logits, aux_logits or None) of a model's output.

  The output contract of `build_deeplab_model`: the logits, or
  `[logits, aux_logits]` with an auxiliary head (a dict with `logits` and
  `aux_logits` is accepted too).
  """
  if isinstance(outputs, (list, tuple)):
    return outputs[0], (outputs[1] if len(outputs) > 1 else None)
  if isinstance(outputs, dict):
    return outputs["logits"], outputs.get("aux_logits")
  return outputs, None


def logits_before_upsampling(model: keras.Model) -> keras.Model:
  """`model` without its final resizes: logits at their own stride.

  Training with official `upsample_logits=False` computes the loss there,
  against downsampled labels. The returned model shares every layer, and so
  every weight, with `model`; its outputs follow `split_outputs`' contract.
  """
  names = [UPSAMPLE_LAYER] + [layer.name for layer in model.layers
                              if layer.name == UPSAMPLE_AUX_LAYER]
  # Each resize layer is called on [logits, images].
  outputs = [model.get_layer(name).input[0] for name in names]
  return keras.Model(model.inputs, outputs if len(outputs) > 1 else outputs[0],
                     name=f"{model.name}_before_upsampling")


def main_logits(outputs) -> tf.Tensor:
  """The float32 logits of a model output, dropping auxiliary heads if any."""
  return tf.cast(split_outputs(outputs)[0], tf.float32)


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
    logits at the input resolution, [batch, H, W, num_classes]; with
    `config.aux_head`, to `[logits, aux_logits]`, both so. Call it with
    `training=True` to train BatchNorm and dropout. With
    `config.quantize_delay_step >= 0` the model is fake-quantized
    (`quantize.quantize_model`).

  Raises:
    ValueError: on an unknown `config.model_variant`, or an auxiliary head
      on a variant without `aux_endpoint`.
  """
  variant = model_variants.get_model_variant(config.model_variant)
  # The heads keep the backbone's options but official model.py's epsilon
  # (1e-5, `deeplab_layers.HEAD_BATCH_NORM_EPSILON`).
  head_norm = deeplab_layers.NormActivation.from_model_config(
      config).for_head()
  bn_args = dict(weight_decay=config.weight_decay, **head_norm.layer_kwargs())

  # === Encoder ===
  images = keras.Input(shape=tuple(input_shape), dtype="float32", name="image")
  x = deeplab_layers.ImagePreprocessing(
      variant.preprocessing, name="preprocess")(images)
  endpoints = variant.backbone_builder(x, config)
  low_level_name = _low_level_endpoint(variant, config)

  # === Head ===
  if config.head == "lr_aspp":
    logits = _lr_aspp_logits(config, variant, endpoints, low_level_name,
                             bn_args)
  else:
    logits = _aspp_decoder_logits(config, endpoints, low_level_name, bn_args)
  if config.boundary_refinement:
    logits = boundary_refinement.BoundaryRefinement(
        weight_decay=config.weight_decay, name=REFINEMENT_LAYER)(logits)
  # float32 even under a mixed-precision policy: losses and argmax want it.
  outputs = deeplab_layers.ResizeBilinear(
      align_corners=True, dtype="float32",
      name=UPSAMPLE_LAYER)([logits, images])

  if config.aux_head:
    # === Auxiliary head (training only; PSPNet Sec. 3.3) ===
    aux_logits = aux_head_lib.AuxiliaryHead(
        num_classes=config.num_classes, filters=config.aux_head_filters,
        dropout_rate=config.aux_head_dropout_rate, name=AUX_HEAD_LAYER,
        **bn_args)(endpoints[_aux_endpoint(variant, endpoints)])
    aux_outputs = deeplab_layers.ResizeBilinear(
        align_corners=True, dtype="float32",
        name=UPSAMPLE_AUX_LAYER)([aux_logits, images])
    model = keras.Model(images, [outputs, aux_outputs], name=name)
  else:
    model = keras.Model(images, outputs, name=name)
  _set_inference_attributes(model, config, variant)
  if config.quantize_delay_step >= 0:
    # Quantization-aware training: fake-quant ops on the float layers,
    # whose names and variables stay as they are.
    quantize.quantize_model(model)
  return model


def _lr_aspp_logits(config, variant, endpoints, low_level_name, bn_args):
  """Lite R-ASPP (MobileNetV3 Sec. 6.3): its output is the logits."""
  if low_level_name is None:
    raise ValueError(
        f"--head=lr_aspp needs a low-level endpoint: model variant "
        f"{variant.name} has them at strides "
        f"{sorted(variant.decoder_endpoints)} (--decoder_output_stride).")
  return lr_aspp_lib.LRASPP(
      num_classes=config.num_classes, filters=config.aspp_filters,
      pool_size=_image_pooling_window(config),
      pool_stride=config.image_pooling_stride,
      name=LOGITS_LAYER, **bn_args)(
          [endpoints["final"], endpoints[low_level_name]])


def _encoder_head(config, features, bn_args):
  """The dense prediction cell when configured, else ASPP (official
  `model.extract_features`)."""
  if config.dense_prediction_cell_config is None:
    return _aspp(config, features, bn_args)
  return dpc_lib.DensePredictionCell(
      config.dense_prediction_cell_config,
      filters=config.aspp_filters, concat_channels=config.aspp_filters,
      conv_rate_multiplier=max(1, 16 // config.output_stride),
      dropout_rate=config.aspp_dropout_rate,
      pool_crop_size=config.image_pooling_crop_size,
      output_stride=config.output_stride, name=DPC_LAYER,
      **bn_args)(features)


def _aspp_decoder_logits(config, endpoints, low_level_name, bn_args):
  """ASPP (or DPC), the optional v3+ decoder and the logits (official
  model.py)."""
  features = _encoder_head(config, endpoints["final"], bn_args)
  if low_level_name is None:
    return _logits_conv(config, features)
  return _decoder_logits(config, features, endpoints[low_level_name],
                         bn_args)


def _aspp(config, features, bn_args):
  """ASPP (DeepLabv3 Sec. 3.3), official `extract_features` scopes."""
  return aspp_lib.ASPP(
      filters=config.aspp_filters,
      atrous_rates=config.atrous_rates,
      use_separable_conv=config.aspp_with_separable_conv,
      image_pooling=config.add_image_level_feature,
      dropout_rate=config.aspp_dropout_rate,
      pool_size=_image_pooling_window(config),
      pool_stride=config.image_pooling_stride,
      concat_projection=config.aspp_with_concat_projection,
      squeeze_and_excitation=config.aspp_with_squeeze_and_excitation,
      se_uses_qsigmoid=config.image_se_uses_qsigmoid,
      quant_friendly=config.quant_friendly,
      branches=config.aspp_branches,
      name="aspp",
      **bn_args)(features)


def _decoder_logits(config, features, low_level, bn_args):
  """The v3+ decoder and the logits."""
  decoder_filters = (config.num_classes if config.decoder_output_is_logits
                     else config.decoder_filters)
  features = decoder_lib.DeepLabV3PlusDecoder(
      filters=decoder_filters,
      low_level_filters=config.low_level_filters,
      use_separable_conv=config.decoder_use_separable_conv,
      sum_merge=config.decoder_use_sum_merge,
      output_is_logits=config.decoder_output_is_logits,
      quant_friendly=config.quant_friendly,
      name="decoder",
      **bn_args)([features, low_level])
  if config.decoder_output_is_logits:
    return features
  return _logits_conv(config, features)


def _logits_conv(config, features):
  """The 1x1 logits conv (official scope `logits/semantic`)."""
  return keras.layers.Conv2D(
      config.num_classes, 1, use_bias=True,
      kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.01),
      kernel_regularizer=deeplab_layers.l2_regularizer(config.weight_decay),
      name=LOGITS_LAYER)(features)


def logits_output_stride(config: config_lib.ModelConfig,
                         variant: model_variants.ModelVariant = None) -> int:
  """Stride of the logits before `upsample_logits`: the decoder's (or the
  LR-ASPP's low-level) stride, else the output stride (official
  `multi_scale_logits`' `logits_output_stride`)."""
  variant = variant or model_variants.get_model_variant(config.model_variant)
  low_level_name = _low_level_endpoint(variant, config)
  if low_level_name is None:
    return config.output_stride
  return config.decoder_output_stride or 8


def main_output_model(model: keras.Model) -> keras.Model:
  """`model` without its auxiliary head, for inference and export.

  Args:
    model: A model from `build_deeplab_model`.

  Returns:
    `model` itself when it has one output; else a model of its first
    output (the logits) that shares its layers and weights, so that the
    auxiliary head is neither computed nor exported.
  """
  if len(model.outputs) == 1:
    return model
  main = keras.Model(model.input, model.outputs[0], name=model.name)
  for name in INFERENCE_ATTRIBUTES:
    if hasattr(model, name):
      setattr(main, name, getattr(model, name))
  return main


# What multi-scale inference needs to know of a model beyond its layers
# (`multiscale.predict`): the logits' stride, and the image-pooling window's
# crop and output stride, which official `multi_scale_logits` rescales; and
# how it predicts (`config.INFERENCE_FIELDS`: `multiscale.predict_labels`).
INFERENCE_ATTRIBUTES = ("logits_output_stride", "image_pooling_crop_size",
                        "output_stride", *config_lib.INFERENCE_FIELDS)


def _set_inference_attributes(model, config, variant):
  model.logits_output_stride = logits_output_stride(config, variant)
  model.image_pooling_crop_size = (tuple(config.image_pooling_crop_size)
                                   if config.image_pooling_crop_size else None)
  model.output_stride = config.output_stride
  for name in config_lib.INFERENCE_FIELDS:
    setattr(model, name, getattr(config, name))


def _aux_endpoint(variant, endpoints):
  """The endpoint name the auxiliary head reads (raises when none)."""
  name = variant.aux_endpoint
  if name is None or name not in endpoints:
    raise ValueError(
        f"Model variant {variant.name} has no auxiliary-head endpoint "
        f"(ModelVariant.aux_endpoint is {name!r}); train it with "
        "--aux_loss_weight=0 (no auxiliary head).")
  return name


def _low_level_endpoint(variant, config):
  """The decoder's (or LR-ASPP's) low-level endpoint name, or None."""
  stride = config.decoder_output_stride
  if stride is None and config.head == "lr_aspp":
    stride = 8
  if stride is None:
    return None
  name = variant.decoder_endpoints.get(stride)
  if name is None:
    logging.warning(
        "Model variant %s has no decoder endpoint at stride %d (it has %s); "
        "building without decoder.", variant.name, stride,
        sorted(variant.decoder_endpoints))
  return name


def _image_pooling_window(config):
  """Official image-pooling window: scale_dimension(crop, 1 / OS)."""
  if config.image_pooling_crop_size is None:
    return None
  return deeplab_layers.image_pooling_window(config.image_pooling_crop_size,
                                             config.output_stride)
