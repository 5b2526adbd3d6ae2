"""`python -m deeplab.evaluation_panoptic`: official eval_coco_format flags."""

import json

import panoptic_test_utils
import testing_utils


def test_cli_prints_and_writes_pc(tmp_path):
  """Official eval_coco_format_test.py::test_compare_pc_with_golden_value."""
  data = panoptic_test_utils.testdata_dir()
  output = tmp_path / "pc.json"
  result = testing_utils.run_app(
      "evaluation_panoptic", f"--gt_json_file={data / 'coco_gt.json'}",
      f"--pred_json_file={data / 'coco_pred.json'}",
      f"--gt_folder={data / 'coco_gt'}", f"--pred_folder={data / 'coco_pred'}",
      "--metric=pc", "--num_categories=7", "--ignored_label=0",
      "--max_instances_per_category=256", "--intersection_offset=65536",
      "--nonormalize_by_image_size", "--print_digits=4",
      f"--output_json={output}", timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  results = json.loads(output.read_text())
  assert abs(results["All"]["pc"] - 0.68210561) < 5e-8
  assert (results["Things"]["n"], results["Stuff"]["n"]) == (4, 2)
  assert sorted(results["per_category"]) == ["1", "2", "3", "4", "5", "6"]
  # The table is in percent with --print_digits kept: 0.6821 -> 68.21.
  assert "68.21" in result.stdout and "PC" in result.stdout


def test_cli_default_folders_and_missing_file(tmp_path):
  data = panoptic_test_utils.testdata_dir()
  result = testing_utils.run_app(
      "evaluation_panoptic", f"--gt_json_file={data / 'coco_gt.json'}",
      f"--pred_json_file={tmp_path / 'none.json'}", "--num_categories=7",
      timeout=120)
  testing_utils.assert_clear_error(result, "none.json")
