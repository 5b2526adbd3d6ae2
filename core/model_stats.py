"""Command line: parameter count and multiply-adds of a DeepLab model.

A thin command line over `deeplab.core.modeling.model_stats`, kept at this
module path because users and scripts call it:

  python -m deeplab.core.model_stats --model_variant=xception_65 \\
    --output_stride=16 --crop_size=513,513 --num_classes=21 \\
    --atrous_rates=6 --atrous_rates=12 --atrous_rates=18 \\
    --decoder_output_stride=4 [--json]
"""

import json

from absl import flags

from deeplab import common_flags
from deeplab.core.modeling import deeplab_model
from deeplab.core.modeling import model_stats as lib


def main(argv):
  del argv
  flag_values = flags.FLAGS
  crop = common_flags.crop_size_from_flag(flag_values.crop_size, "crop_size")
  config = common_flags.model_config_from_flags(
      num_classes=flag_values.num_classes or 21)
  model = deeplab_model.build_deeplab_model(config, input_shape=crop + (3,))
  stats = lib.model_stats(model, crop)
  if flag_values.json:
    print(json.dumps(stats))
  else:
    print(f"model_variant={config.model_variant} "
          f"output_stride={config.output_stride} crop_size={crop[0]}x{crop[1]}"
          f" num_classes={config.num_classes}")
    print(f"params: {stats['params']:,} ({stats['params'] / 1e6:.2f}M)")
    print(f"madds:  {stats['madds']:,} ({stats['madds'] / 1e9:.2f}B)")


def define_flags():
  """Defines this command's flags beside the shared model flags."""
  flags.DEFINE_list("crop_size", ["513", "513"],
                    "Input size 'height,width' to count multiply-adds at.")
  flags.DEFINE_boolean("json", False,
                       "Print one JSON object with keys params and madds.")


if __name__ == "__main__":
  define_flags()
  common_flags.run_app(main, "Statistics", [
      ("Model", common_flags.MODEL_FLAGS)])
