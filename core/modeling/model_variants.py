"""Registry of model variants (`--model_variant`), as official DeepLab's
`feature_extractor` tables (`networks_map`, `_PREPROCESS_FN`,
`networks_to_feature_maps`) gathered in one record per variant.

Adding a backbone means writing its builder module and one
`register_model_variant(...)` call at the bottom of this file.
"""

import dataclasses
from typing import Callable, Dict, Mapping, Optional, Tuple

import keras

from deeplab.core import config as config_lib
from deeplab.core.modeling import layers as deeplab_layers
from deeplab.core.modeling.backbones import keras_app_backbones
from deeplab.core.modeling.backbones import mobilenet_v2
from deeplab.core.modeling.backbones import mobilenet_v3
from deeplab.core.modeling.backbones import nas_network
from deeplab.core.modeling.backbones import resnet_v1
from deeplab.core.modeling.backbones import xception

# builder(preprocessed_images, model_config) -> endpoints. The endpoints must
# hold "final" (the feature ASPP consumes, at config.output_stride), every
# name listed in the variant's `decoder_endpoints` and its `aux_endpoint`.
BackboneBuilder = Callable[[keras.KerasTensor, config_lib.ModelConfig],
                           Dict[str, keras.KerasTensor]]


@dataclasses.dataclass(frozen=True)
class ModelVariant:
  """Everything that differs between backbones.

  Attributes:
    name: The `--model_variant` value.
    backbone_builder: Adds the backbone to a functional graph; see
      `BackboneBuilder`.
    preprocessing: `zero_mean_unit_range` (x / 127.5 - 1),
      `imagenet_mean` (x - ImageNet mean RGB) or `caffe` (Keras
      Applications' ResNet); applied inside the model.
    decoder_endpoints: decoder_output_stride -> name of the low-level
      endpoint the v3+ decoder fuses (official `DECODER_END_POINTS`).
    default_atrous_rates: ASPP rates the official configs use with this
      variant at output stride 16 (empty: ASPP lite); double them at 8.
    aux_endpoint: Name of the endpoint that the auxiliary head reads
      (`ModelConfig.aux_head`, `--aux_loss_weight`): the stride-16 feature
      before the last backbone stage, as PSPNet's `res4b22`; None when the
      variant has none.
  """

  name: str
  backbone_builder: BackboneBuilder
  preprocessing: str = "zero_mean_unit_range"
  decoder_endpoints: Mapping[int, str] = dataclasses.field(
      default_factory=dict)
  default_atrous_rates: Tuple[int, ...] = ()
  aux_endpoint: Optional[str] = None

  def __post_init__(self):
    if self.preprocessing not in deeplab_layers.PREPROCESSING_MODES:
      raise ValueError(
          f"Model variant {self.name!r}: unknown preprocessing "
          f"{self.preprocessing!r}; known: "
          f"{list(deeplab_layers.PREPROCESSING_MODES)}.")

  @property
  def mean_pixel(self) -> Tuple[float, float, float]:
    """The pixel value that preprocessing maps to 0: pad images with it.

    Official `feature_extractor.mean_pixel`.
    """
    return deeplab_layers.mean_pixel_of(self.preprocessing)


_REGISTRY: Dict[str, ModelVariant] = {}


def register_model_variant(variant: ModelVariant) -> ModelVariant:
  """Adds `variant` to the registry.

  Raises:
    ValueError: if a variant of that name is already registered.
  """
  if variant.name in _REGISTRY:
    raise ValueError(f"Model variant {variant.name!r} is already registered.")
  _REGISTRY[variant.name] = variant
  return variant


def get_model_variant(name: str) -> ModelVariant:
  """Returns the registered variant called `name`.

  Raises:
    ValueError: naming the unknown `--model_variant` and the known ones.
  """
  try:
    return _REGISTRY[name]
  except KeyError:
    raise ValueError(
        f"Unknown --model_variant {name!r}; known variants: "
        f"{', '.join(known_model_variants())}.") from None


def known_model_variants() -> Tuple[str, ...]:
  """Names of all registered variants, sorted."""
  return tuple(sorted(_REGISTRY))


# === Builders: adapt ModelConfig to each backbone's arguments ===


def _norm(config: config_lib.ModelConfig, **changes):
  """The backbone's BatchNorm options from `config` (activations stay each
  backbone's own)."""
  return deeplab_layers.NormActivation.from_model_config(config).replace(
      activation="relu", **changes)


def _build_mobilenet_v2(images, config: config_lib.ModelConfig):
  return mobilenet_v2.build_mobilenet_v2(
      images,
      output_stride=config.output_stride,
      depth_multiplier=config.depth_multiplier,
      norm=_norm(config),
      weight_decay=config.weight_decay,
      quant_friendly=config.quant_friendly,
      kernel_initializer=config.backbone_initializer or None)


def _xception_builder(name):
  def build(images, config: config_lib.ModelConfig):
    return xception.build_xception(
        images, name=name,
        output_stride=config.output_stride,
        multi_grid=config.multi_grid or (1, 1, 1),
        norm=_norm(config),
        weight_decay=config.weight_decay,
        use_bounded_activation=config.use_bounded_activation,
        kernel_initializer=config.backbone_initializer or None)
  return build


def _resnet_v1_builder(name):
  def build(images, config: config_lib.ModelConfig):
    # Official feature_extractor builds every ResNet with BN epsilon 1e-5.
    return resnet_v1.build_resnet_v1(
        images, name=name,
        output_stride=config.output_stride,
        multi_grid=config.multi_grid,
        norm=_norm(config, epsilon=1e-5),
        weight_decay=config.weight_decay,
        use_bounded_activation=config.use_bounded_activation,
        kernel_initializer=config.backbone_initializer or None)
  return build


def _build_keras_resnet(name):
  def build(images, config: config_lib.ModelConfig):
    return keras_app_backbones.build_keras_resnet(
        images, name=name, output_stride=config.output_stride,
        batch_norm_momentum=config.batch_norm_momentum,
        weight_decay=config.weight_decay,
        sync_batch_norm=config.sync_batch_norm)
  return build


def _build_keras_xception(images, config: config_lib.ModelConfig):
  return keras_app_backbones.build_keras_xception(
      images, output_stride=config.output_stride,
      batch_norm_momentum=config.batch_norm_momentum,
      batch_norm_epsilon=config.batch_norm_epsilon,
      weight_decay=config.weight_decay,
      sync_batch_norm=config.sync_batch_norm)


def _mobilenet_v3_builder(name):
  def build(images, config: config_lib.ModelConfig):
    return mobilenet_v3.build_mobilenet_v3(
        images, name=name, output_stride=config.output_stride,
        depth_multiplier=config.depth_multiplier,
        norm=_norm(config),
        weight_decay=config.weight_decay,
        quant_friendly=config.quant_friendly,
        kernel_initializer=config.backbone_initializer or None)
  return build


def _nas_builder(name):
  def build(images, config: config_lib.ModelConfig):
    return nas_network.build_nas_network(
        images, name=name, output_stride=config.output_stride,
        num_conv_filters=config.nas_stem_output_num_conv_filters,
        use_classification_head=config.nas_use_classification_head,
        remove_os32_stride=config.nas_remove_os32_stride,
        norm=_norm(config),
        weight_decay=config.weight_decay,
        drop_path_keep_prob=config.drop_path_keep_prob,
        total_training_steps=config.drop_path_total_steps,
        kernel_initializer=config.backbone_initializer or None)
  return build


# === Registry ===

# Auxiliary-head endpoints: the stride-16 output of the stage before the
# last one. ResNet: slim `block3` (Keras `conv4`, PSPNet's res4b22);
# Xception: the middle flow's output (Keras `block12_out`); MobileNets: the
# last 96-channel (v2), 112-channel (v3 large) or 48-channel (v3 small)
# layer, before the last stage (mmsegmentation's MobileNetV2 aux input).
_AUX_ENDPOINTS = {
    "mobilenet_v2": "layer_14",
    "mobilenet_v3_large_seg": "layer_13",
    "mobilenet_v3_small_seg": "layer_9",
    "xception": "block12_out",
    "resnet50": "conv4_block6_out",
    "resnet101": "conv4_block23_out",
}

register_model_variant(ModelVariant(
    name="mobilenet_v2",
    backbone_builder=_build_mobilenet_v2,
    preprocessing="zero_mean_unit_range",
    decoder_endpoints={
        4: "layer_4/depthwise_output",
        8: "layer_7/depthwise_output",
        16: "layer_14/depthwise_output",
    },
    default_atrous_rates=(),
    aux_endpoint=_AUX_ENDPOINTS["mobilenet_v2"]))

for _name in sorted(xception.BLOCKS):
  register_model_variant(ModelVariant(
      name=_name,
      backbone_builder=_xception_builder(_name),
      preprocessing="zero_mean_unit_range",
      decoder_endpoints=xception.DECODER_ENDPOINTS[_name],
      default_atrous_rates=(6, 12, 18),
      aux_endpoint="middle_flow/block1"))

for _name, (_depth, _beta) in sorted(resnet_v1.VARIANTS.items()):
  register_model_variant(ModelVariant(
      name=_name,
      backbone_builder=_resnet_v1_builder(_name),
      # Official: only the beta variants take [-1, 1] inputs.
      preprocessing="zero_mean_unit_range" if _beta else "imagenet_mean",
      decoder_endpoints=resnet_v1.DECODER_ENDPOINTS[_depth],
      default_atrous_rates=(6, 12, 18),
      aux_endpoint="block3"))

# Keras Applications architectures (community ports), atrous added.
for _name in sorted(keras_app_backbones.RESNET_STAGES):
  register_model_variant(ModelVariant(
      name=_name,
      backbone_builder=_build_keras_resnet(_name),
      preprocessing="caffe",
      decoder_endpoints=keras_app_backbones.DECODER_ENDPOINTS[_name],
      default_atrous_rates=(6, 12, 18),
      aux_endpoint=_AUX_ENDPOINTS[_name]))

register_model_variant(ModelVariant(
    name="xception",
    backbone_builder=_build_keras_xception,
    preprocessing="zero_mean_unit_range",
    decoder_endpoints=keras_app_backbones.DECODER_ENDPOINTS["xception"],
    default_atrous_rates=(6, 12, 18),
    aux_endpoint=_AUX_ENDPOINTS["xception"]))

for _name in sorted(mobilenet_v3.SPECS):
  register_model_variant(ModelVariant(
      name=_name,
      backbone_builder=_mobilenet_v3_builder(_name),
      preprocessing="zero_mean_unit_range",
      decoder_endpoints=mobilenet_v3.DECODER_ENDPOINTS[_name],
      default_atrous_rates=(),
      aux_endpoint=_AUX_ENDPOINTS[_name]))

# Official feature_extractor: NAS takes [-1, 1] inputs. Auxiliary head:
# `Cell_7`, the stride-16 endpoint of official DECODER_END_POINTS, midway
# through the 12 cells.
for _name in sorted(nas_network.SCOPES):
  register_model_variant(ModelVariant(
      name=_name,
      backbone_builder=_nas_builder(_name),
      preprocessing="zero_mean_unit_range",
      decoder_endpoints=nas_network.DECODER_ENDPOINTS[_name],
      default_atrous_rates=(),
      aux_endpoint="Cell_7"))
