"""The TF Model Garden configured to our DeepLabv3+ architecture.

Shared by `train_learning.py` and `model_throughput.py`, so that both
compare the same work: OS16 backbone, ASPP with depthwise-separable 3x3
convs (rates 6/12/18 for ResNet-50, image pooling + 1x1 only for
MobileNetV2), the v3+ decoder at stride 4 (48 low-level filters, two
separable 3x3 convs of 256). The Model Garden's default
`seg_deeplabv3plus_pascal` head uses regular 3x3 convs instead: about twice
our FLOPs, so timing it against ours is not a same-work comparison.
"""

GARDEN_MODELS = {
    "resnet_v1_50": {
        "backbone": {"type": "dilated_resnet", "dilated_resnet": {
            "model_id": 50, "output_stride": 16, "stem_type": "v0",
            "multigrid": None}},
        "dilation_rates": [6, 12, 18],
        "low_level": 2,
    },
    "mobilenet_v2": {
        "backbone": {"type": "mobilenet", "mobilenet": {
            "model_id": "MobileNetV2", "output_stride": 16,
            "output_intermediate_endpoints": True}},
        "dilation_rates": [],
        "low_level": "2/depthwise",
    },
}


def same_architecture(variant: str, dropout_rate: float = 0.1) -> dict:
  """`task.model` overrides (backbone, decoder, head) for `variant`."""
  model = GARDEN_MODELS[variant]
  return {
      "backbone": model["backbone"],
      "decoder": {"type": "aspp", "aspp": {
          "level": 4, "dilation_rates": model["dilation_rates"],
          "dropout_rate": dropout_rate, "use_depthwise_convolution": True}},
      "head": {"level": 4, "num_convs": 2, "num_filters": 256,
               "feature_fusion": "deeplabv3plus",
               "low_level": model["low_level"],
               "low_level_num_filters": 48,
               "use_depthwise_convolution": True},
  }


def build_garden_model(size: int, num_classes: int, variant=None):
  """The Model Garden's `seg_deeplabv3plus_pascal` model (dilated
  ResNet-50) for size x size inputs; with `variant`, configured to our
  architecture. Runs in bench/.venv-garden only."""
  import tf_keras  # pylint: disable=g-import-not-at-top
  from official.core import exp_factory  # pylint: disable=g-import-not-at-top
  from official.vision import registry_imports  # pylint: disable=g-import-not-at-top,unused-import
  from official.vision.modeling import factory  # pylint: disable=g-import-not-at-top
  config = exp_factory.get_exp_config("seg_deeplabv3plus_pascal")
  model_config = config.task.model
  model_config.num_classes = num_classes
  model_config.input_size = [size, size, 3]
  model_config.backbone.dilated_resnet.model_id = 50
  if variant:
    model_config.override(dict(
        same_architecture(variant),
        norm_activation={"activation": "relu", "use_sync_bn": False}),
                          is_strict=True)
  return factory.build_segmentation_model(
      input_specs=tf_keras.layers.InputSpec(shape=[None, size, size, 3]),
      model_config=model_config, l2_regularizer=None)
