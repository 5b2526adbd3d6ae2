"""Command line: imports pretrained weights into a DeepLab model and writes our checkpoint.

A thin command line over `deeplab.core.modeling.import_weights`, kept at
this module path because users and scripts call it:

  python -m deeplab.core.import_weights --model_variant=xception_65 \\
    --source=xception_65_imagenet.tar.gz --output=/tmp/init/model \\
    --num_classes=21 --atrous_rates=6 --atrous_rates=12 \\
    --atrous_rates=18 --decoder_output_stride=4
"""

from absl import flags
from absl import logging

from deeplab import common_flags
from deeplab.core.modeling import deeplab_model
from deeplab.core.modeling import import_weights as lib


def main(argv):
  del argv
  flag_values = flags.FLAGS
  common_flags.require_flag("source")
  common_flags.require_flag("output")
  config = common_flags.model_config_from_flags(
      num_classes=flag_values.num_classes or 21)
  model = deeplab_model.build_deeplab_model(config)
  report = lib.import_weights(model, flag_values.source)
  for kind in ("matched", "missing", "mismatched", "unused"):
    for name in getattr(report, kind):
      logging.info("%s: %s", kind, name)
  if not report.matched:
    raise ValueError(f"--source {flag_values.source}: no variable matched "
                     f"--model_variant={config.model_variant}.")
  path = lib.write_checkpoint(model, flag_values.output, report, config)
  print(f"{report.summary()}\nwrote {path}")


def define_flags():
  """Defines this command's flags beside the shared model flags."""
  flags.DEFINE_string("source", None,
                      "Keras Applications .h5, a keras-deeplab-v3-plus "
                      "(bonlime) .h5, or an official DeepLab checkpoint "
                      "(prefix, folder or model-zoo .tar.gz).")
  flags.DEFINE_string("output", None, "Prefix of the checkpoint to write.")


if __name__ == "__main__":
  define_flags()
  common_flags.run_app(main, "Import", [
      ("Model", common_flags.MODEL_FLAGS)])
