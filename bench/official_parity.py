"""Fidelity to official DeepLab: the official graph against our import of its
checkpoint, configuration by configuration.

For each configuration, official research/deeplab (run by
bench/official_oracle.py in .venv-official, which
scripts/ensure_official_venv.sh creates) builds the model, gives it random
weights with realistic BatchNorm statistics, saves a TF1 checkpoint packed
like a model-zoo tarball and runs it on a test image (single scale, and
multi-scale + flipped as `predict_labels_multi_scale`). Here, our CLI
`python -m deeplab.core.import_weights` converts that tarball; our model
restores the result and runs on the same image. Compared: the logits at
feature resolution, the upsampled logits and labels, the multi-scale
averaged softmax and labels, and the import report (0 missing, 0 unused, 0
mismatched). The eval preprocessing (pad to the crop with the variant's
mean pixel, resize to range) is compared pixel for pixel too.

Pass criteria (issue "Official checkpoints give official outputs"):
max|diff| <= 1e-3 * max|official logit| (multi-scale: the same relative to
the largest probability), argmax agreement >= 99.9%.

Usage (the full set, ~20 min on 2 cores; writes a Markdown table):
  python bench/official_parity.py --out /tmp/parity [--only xception_65_os16]
"""

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORACLE = os.path.join(REPO_ROOT, "bench", "official_oracle.py")
ENSURE_VENV = os.path.join(REPO_ROOT, "scripts", "ensure_official_venv.sh")
OFFICIAL_DIR = os.path.join(REPO_ROOT, "..", "shared", "official_deeplab")
# The official DPC preset, given to both codes as a file path.
DPC_JSON = os.path.abspath(os.path.join(
    OFFICIAL_DIR, "research", "deeplab", "core",
    "dense_prediction_cell_branch5_top1_cityscapes.json"))
RELATIVE_TOLERANCE = 1e-3
MIN_AGREEMENT = 0.999

_XCEPTION_HEAD = {"output_stride": 16, "atrous_rates": (6, 12, 18),
                  "decoder_output_stride": 4}
# The MobileNetV3 model-zoo head (Cityscapes): SE image pooling over a
# window, no concat projection, sum-merge decoder whose output is the logits.
_MOBILENET_V3_HEAD = {
    "output_stride": 32, "decoder_output_stride": 8,
    "image_pooling_crop_size": (129, 129), "image_pooling_stride": (4, 5),
    "aspp_convs_filters": 128, "aspp_with_concat_projection": False,
    # The zoo sets decoder_filters to the number of classes (official
    # defaults to 256 even when the decoder output is the logits).
    "decoder_filters": 7,
    "aspp_with_squeeze_and_excitation": True, "image_se_uses_qsigmoid": True,
    "decoder_use_sum_merge": True, "decoder_output_is_logits": True}


@dataclasses.dataclass(frozen=True)
class Config:
  """One configuration, in flags that mean the same to both codes.

  Attributes:
    name: Row name.
    flags: `--model_variant`, `--output_stride`, `--atrous_rates`,
      `--decoder_output_stride`, ... (official names, which ours share).
    crop: (height, width) of the test image (the eval crop).
    eval_scales: Scales of the multi-scale + flipped comparison; () skips it.
  """
  name: str
  flags: Dict
  crop: Tuple[int, int] = (257, 257)
  eval_scales: Tuple[float, ...] = ()
  num_classes: int = 7


def _config(name, variant, crop=(257, 257), eval_scales=(), **flags):
  return Config(name, dict(model_variant=variant, **flags), crop,
                eval_scales)


CONFIGS = [
    _config("mobilenet_v2_os16_zoo", "mobilenet_v2", output_stride=16,
            eval_scales=(0.5, 0.75, 1.0, 1.25)),
    _config("mobilenet_v2_os8_zoo", "mobilenet_v2", output_stride=8),
    _config("mobilenet_v2_os16_aspp_decoder", "mobilenet_v2",
            **_XCEPTION_HEAD),
    _config("mobilenet_v2_os8_aspp_decoder", "mobilenet_v2", output_stride=8,
            atrous_rates=(12, 24, 36), decoder_output_stride=4),
    _config("xception_41_os16", "xception_41", **_XCEPTION_HEAD),
    _config("xception_65_os16", "xception_65", eval_scales=(0.75, 1.0, 1.25),
            **_XCEPTION_HEAD),
    # Multi-scale with an image-pooling crop: the pooling window scales with
    # the image (official multi_scale_logits).
    _config("xception_65_os16_pool_crop", "xception_65", crop=(129, 129),
            eval_scales=(0.75, 1.0, 1.25), image_pooling_crop_size=(97, 97),
            **_XCEPTION_HEAD),
    _config("xception_65_os8", "xception_65", output_stride=8,
            atrous_rates=(12, 24, 36), decoder_output_stride=4),
    _config("xception_71_os16", "xception_71", **_XCEPTION_HEAD),
    _config("resnet_v1_50_os16", "resnet_v1_50", **_XCEPTION_HEAD),
    _config("resnet_v1_50_beta_os16", "resnet_v1_50_beta", **_XCEPTION_HEAD),
    _config("resnet_v1_101_os16", "resnet_v1_101", **_XCEPTION_HEAD),
    _config("resnet_v1_101_beta_os16_mg124", "resnet_v1_101_beta",
            multi_grid=(1, 2, 4), **_XCEPTION_HEAD),
    _config("mobilenet_v3_large_seg_zoo", "mobilenet_v3_large_seg",
            crop=(257, 321), **_MOBILENET_V3_HEAD),
    _config("mobilenet_v3_small_seg_zoo", "mobilenet_v3_small_seg",
            crop=(257, 321), **_MOBILENET_V3_HEAD),
    # NAS backbones (issue 13): PNASNet-5 with the decoder on its `Stem`
    # endpoint; Auto-DeepLab at its native stride 8, and with the
    # classification head (strided, then atrous) and no stride-32 level.
    _config("nas_pnasnet_os16", "nas_pnasnet", output_stride=16,
            atrous_rates=(6, 12, 18), decoder_output_stride=4),
    _config("nas_pnasnet_os8_head", "nas_pnasnet", output_stride=8,
            nas_use_classification_head=True,
            nas_stem_output_num_conv_filters=16),
    _config("nas_hnasnet_os8", "nas_hnasnet", output_stride=8,
            decoder_output_stride=4),
    _config("nas_hnasnet_os16_head", "nas_hnasnet", output_stride=16,
            atrous_rates=(6, 12, 18), nas_use_classification_head=True,
            nas_remove_os32_stride=True),
    # The zoo's xception71_dpc (Cityscapes): the dense prediction cell.
    _config("xception_71_dpc", "xception_71", output_stride=16,
            decoder_output_stride=4, dense_prediction_cell_json=DPC_JSON),
]
# The eval preprocessing: (name, variant, image size, crop, min/max resize).
PREPROCESS_CASES = [
    ("pad_zero_mean_unit_range", "xception_65", (37, 50), (65, 65), None,
     None),
    ("pad_imagenet_mean", "resnet_v1_50", (37, 50), (65, 65), None, None),
    ("resize_and_pad_imagenet_mean", "resnet_v1_50", (37, 50), (97, 97), 60,
     90),
    ("resize_and_pad_zero_mean_unit_range", "mobilenet_v2", (50, 37),
     (97, 97), 60, 90),
]


# === The official side ===


def ensure_official_venv() -> str:
  """Creates or reuses .venv-official; returns its path."""
  result = subprocess.run(["bash", ENSURE_VENV], check=True,
                          stdout=subprocess.PIPE, text=True)
  return result.stdout.strip().splitlines()[-1]


def run_oracle(venv: str, requests: List[Dict], workdir: str):
  """Runs bench/official_oracle.py on `requests` in the official venv."""
  path = os.path.join(workdir, "requests.json")
  with open(path, "w", encoding="utf-8") as f:
    json.dump(requests, f)
  env = dict(os.environ, PYTHONPATH=os.path.join(venv, "official"),
             TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  result = subprocess.run([os.path.join(venv, "bin", "python"), ORACLE, path],
                          env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  if result.returncode:
    raise RuntimeError("official oracle failed:\n" + result.stdout[-4000:])


def test_images(crop: Sequence[int], seed: int = 0) -> np.ndarray:
  """Two smooth random images [2, h, w, 3] in 0..255: image 0 is the test
  image, both calibrate BatchNorm (one image gives the image-pooling
  BatchNorm a zero variance)."""
  rng = np.random.default_rng(seed)
  height, width = crop
  coarse = rng.uniform(0, 255, (2, height // 8 + 2, width // 8 + 2, 3))
  ys = np.linspace(0, coarse.shape[1] - 1.001, height)
  xs = np.linspace(0, coarse.shape[2] - 1.001, width)
  y0, x0 = ys.astype(int), xs.astype(int)
  fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
  smooth = (coarse[:, y0][:, :, x0] * (1 - fy) * (1 - fx) +
            coarse[:, y0 + 1][:, :, x0] * fy * (1 - fx) +
            coarse[:, y0][:, :, x0 + 1] * (1 - fy) * fx +
            coarse[:, y0 + 1][:, :, x0 + 1] * fy * fx)
  noise = rng.normal(0, 12, smooth.shape)
  return np.clip(smooth + noise, 0, 255).astype(np.float32)


def model_request(config: Config, workdir: str, seed: int = 0) -> Dict:
  """The oracle request for `config` (writes its images)."""
  out_dir = os.path.join(workdir, config.name)
  os.makedirs(out_dir, exist_ok=True)
  images_path = os.path.join(out_dir, "images.npy")
  np.save(images_path, test_images(config.crop, seed))
  flags = dict(config.flags)
  official_flags = {k: v for k, v in flags.items()
                    if k not in ("atrous_rates", "output_stride")}
  return {"kind": "model", "name": config.name, "flags": official_flags,
          "atrous_rates": list(flags.get("atrous_rates", ())) or None,
          "output_stride": flags.get("output_stride", 16),
          "num_classes": config.num_classes, "crop": list(config.crop),
          "eval_scales": list(config.eval_scales or (1.0,)),
          "add_flipped_images": bool(config.eval_scales), "seed": seed,
          "images": images_path, "out_dir": out_dir}


# === Our side ===


def cli_args(config: Config) -> List[str]:
  """Our CLI's flags for `config` (the same names as official)."""
  args = []
  for name, value in sorted(config.flags.items()):
    if isinstance(value, bool):
      args.append(f"--{name}" if value else f"--no{name}")
    elif name in ("atrous_rates", "multi_grid"):
      args += [f"--{name}={v}" for v in value]
    elif isinstance(value, (list, tuple)):
      args.append(f"--{name}={','.join(str(v) for v in value)}")
    else:
      args.append(f"--{name}={value}")
  return args + [f"--num_classes={config.num_classes}"]


def import_with_cli(config: Config, tarball: str, output: str) -> Dict:
  """Runs `python -m deeplab.core.import_weights`; returns its report."""
  command = [sys.executable, "-m", "deeplab.core.import_weights",
             f"--source={tarball}", f"--output={output}"] + cli_args(config)
  result = subprocess.run(command, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  if result.returncode:
    raise RuntimeError(f"import_weights failed for {config.name}:\n"
                       + result.stdout[-4000:])
  with open(output + ".import_report.json", encoding="utf-8") as f:
    return json.load(f)


def model_config(config: Config):
  """Our ModelConfig for `config`."""
  from deeplab.core import config as config_lib  # pylint: disable=g-import-not-at-top
  from deeplab.core.modeling.heads import dense_prediction_cell  # pylint: disable=g-import-not-at-top
  renamed = {"aspp_convs_filters": "aspp_filters"}
  fields = {renamed.get(k, k): (tuple(v) if isinstance(v, (list, tuple))
                                else v)
            for k, v in config.flags.items()}
  if "dense_prediction_cell_json" in fields:
    fields["dense_prediction_cell_config"] = tuple(
        dense_prediction_cell.load_config(
            fields.pop("dense_prediction_cell_json")))
  fields.setdefault("decoder_output_stride", None)
  return config_lib.ModelConfig(num_classes=config.num_classes, **fields)


def run_ours(config: Config, checkpoint: str, image: np.ndarray) -> Dict:
  """Our logits, upsampled logits, labels (and multi-scale) for `image`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab.core.modeling import deeplab_model  # pylint: disable=g-import-not-at-top
  from deeplab.core.modeling import multiscale  # pylint: disable=g-import-not-at-top
  model = deeplab_model.build_deeplab_model(model_config(config))
  tf.train.Checkpoint(model=model).read(
      checkpoint).assert_existing_objects_matched()
  logits_model = multiscale.logits_model(model)[0]
  images = tf.constant(image[None])
  out = {"logits": logits_model(images, training=False).numpy(),
         "upsampled": model(images, training=False).numpy()}
  out["labels"] = out["upsampled"].argmax(-1)
  if config.eval_scales:
    probabilities, _ = multiscale.predict(model, images, config.eval_scales,
                                          add_flipped_images=True)
    out["ms_probabilities"] = probabilities.numpy()
    out["ms_labels"] = out["ms_probabilities"].argmax(-1)
  return out


# === Comparison ===


def compare(official: np.ndarray, ours: np.ndarray,
            official_labels: np.ndarray, our_labels: np.ndarray) -> Dict:
  """Max |diff|, its ratio to max |official| and the argmax agreement."""
  if official.shape != ours.shape:
    raise AssertionError(f"shapes differ: official {official.shape}, ours "
                         f"{ours.shape}")
  max_diff = float(np.abs(official - ours).max())
  scale = float(np.abs(official).max())
  return {"max_abs_diff": max_diff, "max_abs_official": scale,
          "relative": max_diff / scale,
          "agreement": float((official_labels == our_labels).mean())}


def passes(row: Dict) -> bool:
  """The issue's criteria for one comparison."""
  return (row["relative"] <= RELATIVE_TOLERANCE and
          row["agreement"] >= MIN_AGREEMENT)


def check_model(config: Config, out_dir: str) -> Dict:
  """Imports the oracle's tarball with our CLI and compares (one config)."""
  official = np.load(os.path.join(out_dir, "official.npz"))
  report = import_with_cli(config, os.path.join(out_dir, f"{config.name}"
                                                ".tar.gz"),
                           os.path.join(out_dir, "ours", "model"))
  image = np.load(os.path.join(out_dir, "images.npy"))[0]
  ours = run_ours(config, os.path.join(out_dir, "ours", "model"), image)
  row = {"name": config.name,
         "official_variables": int(official["num_variables"]),
         "matched": len(report["matched"]),
         "missing": report["missing"], "unused": report["unused"],
         "mismatched": report["mismatched"],
         "logits": compare(official["logits"], ours["logits"],
                           official["logits"].argmax(-1),
                           ours["logits"].argmax(-1)),
         "upsampled": compare(official["upsampled"], ours["upsampled"],
                              official["labels"], ours["labels"])}
  if config.eval_scales:
    row["multi_scale"] = compare(
        official["ms_probabilities"], ours["ms_probabilities"],
        official["ms_labels"], ours["ms_labels"])
  row["passed"] = (not (row["missing"] or row["unused"] or row["mismatched"])
                   and row["matched"] == row["official_variables"] and
                   all(passes(row[k]) for k in ("logits", "upsampled",
                                                "multi_scale") if k in row))
  return row


def preprocess_request(case, workdir: str) -> Dict:
  """The oracle request of one eval-preprocessing case."""
  name, variant, size, crop, min_resize, max_resize = case
  out_dir = os.path.join(workdir, name)
  os.makedirs(out_dir, exist_ok=True)
  rng = np.random.default_rng(1)
  np.save(os.path.join(out_dir, "image.npy"),
          rng.integers(0, 256, size + (3,), dtype=np.uint8))
  np.save(os.path.join(out_dir, "label.npy"),
          rng.integers(0, 5, size + (1,), dtype=np.uint8))
  return {"kind": "preprocess", "model_variant": variant, "crop": list(crop),
          "min_resize_value": min_resize, "max_resize_value": max_resize,
          "image": os.path.join(out_dir, "image.npy"),
          "label": os.path.join(out_dir, "label.npy"), "out_dir": out_dir}


def check_preprocess(case, out_dir: str) -> Dict:
  """Our eval preprocessing against the oracle's, pixel for pixel."""
  from deeplab.core.modeling import model_variants  # pylint: disable=g-import-not-at-top
  from deeplab.datasets import preprocess  # pylint: disable=g-import-not-at-top
  name, variant, _, crop, min_resize, max_resize = case
  official = np.load(os.path.join(out_dir, "official.npz"))
  image, label = preprocess.preprocess_image_and_label(
      np.load(os.path.join(out_dir, "image.npy")),
      np.load(os.path.join(out_dir, "label.npy")), crop[0], crop[1],
      min_resize_value=min_resize, max_resize_value=max_resize,
      is_training=False,
      mean_pixel=model_variants.get_model_variant(variant).mean_pixel)
  image_diff = float(np.abs(image.numpy() - official["image"]).max())
  label_equal = bool((label.numpy() == official["label"]).all())
  return {"name": name, "model_variant": variant,
          "max_abs_pixel_diff": image_diff, "labels_equal": label_equal,
          "passed": image_diff <= 1e-3 and label_equal}


def _checked(check, item, out_dir) -> Dict:
  """`check(item, out_dir)`, or a failed row naming the error."""
  try:
    return check(item, out_dir)
  except Exception as error:  # pylint: disable=broad-except
    name = item.name if isinstance(item, Config) else item[0]
    return {"name": name, "passed": False,
            "error": f"{type(error).__name__}: {error}"[-2000:]}


def run(configs: Sequence[Config], preprocess_cases: Sequence = (),
        workdir: Optional[str] = None, reuse: bool = False) -> List[Dict]:
  """Runs the oracle once for everything, then our side; returns rows.

  With `reuse`, the official outputs already in `workdir` are kept (only
  our side runs again for them).
  """
  workdir = workdir or tempfile.mkdtemp(prefix="official_parity_")
  names = [c.name for c in configs] + [c[0] for c in preprocess_cases]
  done = {n for n in names if reuse and os.path.exists(
      os.path.join(workdir, n, "official.npz"))}
  requests = [model_request(c, workdir) for c in configs
              if c.name not in done]
  requests += [preprocess_request(c, workdir) for c in preprocess_cases
               if c[0] not in done]
  if requests:
    run_oracle(ensure_official_venv(), requests, workdir)
  rows = [_checked(check_model, c, os.path.join(workdir, c.name))
          for c in configs]
  rows += [_checked(check_preprocess, c, os.path.join(workdir, c[0]))
           for c in preprocess_cases]
  return rows


def markdown(rows: Sequence[Dict]) -> str:
  """The docs/benchmarks.md tables."""
  lines = ["| Configuration | Variables matched | max abs diff / max abs "
           "logit | Argmax agreement | Multi-scale + flip: max abs diff / "
           "max prob, agreement |",
           "|---|---|---|---|---|"]
  for row in rows:
    if "error" in row:
      lines.append(f"| {row['name']} | error: {row['error'][:120]} | | | |")
    if "logits" not in row:
      continue
    up = row["upsampled"]
    bad = len(row["missing"]) + len(row["unused"]) + len(row["mismatched"])
    ms = row.get("multi_scale")
    ms_text = (f"{ms['max_abs_diff']:.2g} / {ms['max_abs_official']:.3g}, "
               f"{100 * ms['agreement']:.3f}%" if ms else "")
    lines.append(
        f"| {row['name']} | {row['matched']}/{row['official_variables']}"
        f"{'' if not bad else f' ({bad} missing/unused/mismatched)'} | "
        f"{up['max_abs_diff']:.2g} / {up['max_abs_official']:.3g} "
        f"({up['relative']:.1e}) | {100 * up['agreement']:.3f}% | {ms_text} |")
  pre = [r for r in rows if "labels_equal" in r]
  if pre:
    lines += ["", "| Eval preprocessing | Variant | max abs pixel diff | "
              "Labels equal |", "|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['model_variant']} | "
              f"{r['max_abs_pixel_diff']:.2g} | {r['labels_equal']} |"
              for r in pre]
  return "\n".join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", default=None, help="Work folder (kept).")
  parser.add_argument("--only", action="append", default=[],
                      help="Run only these configurations (repeatable).")
  parser.add_argument("--reuse", action="store_true",
                      help="Keep the official outputs already in --out.")
  args = parser.parse_args(argv)
  configs = [c for c in CONFIGS if not args.only or c.name in args.only]
  cases = [c for c in PREPROCESS_CASES if not args.only or c[0] in args.only]
  if args.out:
    os.makedirs(args.out, exist_ok=True)
  rows = run(configs, cases, args.out, reuse=args.reuse and bool(args.out))
  print(json.dumps(rows, indent=1))
  print(markdown(rows))
  failed = [r["name"] for r in rows if not r["passed"]]
  if failed:
    print(f"FAILED: {failed}")
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
