"""inference.py helpers: input listing, image loading, PNG outputs."""

import numpy as np
from PIL import Image
import pytest

import deeplab.inference as inference
from deeplab.datasets import colormaps


def test_list_images_expands_folders_and_globs(tmp_path):
  for name in ("b.jpg", "a.png", "notes.txt"):
    (tmp_path / name).write_bytes(b"x")
  assert inference.list_images([str(tmp_path)]) == [
      str(tmp_path / "a.png"), str(tmp_path / "b.jpg")]
  assert inference.list_images([str(tmp_path / "*.jpg")]) == [
      str(tmp_path / "b.jpg")]
  with pytest.raises(FileNotFoundError, match="nothing_here"):
    inference.list_images([str(tmp_path / "nothing_here*.jpg")])


@pytest.mark.parametrize("mode", ["L", "RGBA", "RGB"])
def test_load_rgb_converts_grayscale_and_rgba(tmp_path, mode):
  path = tmp_path / f"image_{mode}.png"
  Image.new(mode, (7, 5)).save(path)
  image = inference.load_rgb(str(path))
  assert image.shape == (5, 7, 3) and image.dtype == np.uint8


def test_load_rgb_names_a_non_image(tmp_path):
  bogus = tmp_path / "notes.jpg"
  bogus.write_text("not an image")
  with pytest.raises(ValueError, match="notes.jpg"):
    inference.load_rgb(str(bogus))


class _RecordingPredictor:
  """Labels = a colour threshold; records the sizes it was given."""

  name = "recording"

  def __init__(self):
    self.calls = []

  def __call__(self, image):
    return self.predict_batch([image])[0]

  def predict_batch(self, images):
    self.calls.append([image.shape for image in images])
    outputs = []
    for image in images:
      labels = (image[..., 0] > 127).astype(np.int32)
      probabilities = np.stack([1.0 - labels, labels], -1).astype(np.float32)
      outputs.append((labels, probabilities))
    return outputs


def test_segment_files_batches_and_writes_every_output(tmp_path):
  files = []
  for index, size in enumerate([(40, 30), (40, 30), (40, 30), (25, 20)]):
    path = tmp_path / f"img{index}.png"
    array = np.zeros(size[::-1] + (3,), np.uint8)
    array[:, : size[0] // 2] = 255
    Image.fromarray(array).save(path)
    files.append(str(path))
  predictor = _RecordingPredictor()
  out = tmp_path / "out"
  written = inference.segment_files(
      predictor, files, str(out), colormaps.create_pascal_label_colormap(),
      batch_size=3, save_probabilities=True)
  assert [len(call) for call in predictor.calls] == [3, 1]
  assert len(written) == 4
  labels = np.array(Image.open(out / "img0.png"))
  assert labels.shape == (30, 40) and labels[:, :20].all() and not labels[:, 20:].any()
  probabilities = np.load(out / "img3.npy")
  assert probabilities.shape == (20, 25, 2) and probabilities.dtype == np.float16
  assert (out / "img3_overlay.png").exists()


def test_a_huge_image_is_segmented_downscaled(tmp_path):
  path = tmp_path / "huge.jpg"
  huge = Image.new("RGB", (10000, 10000), (200, 0, 0))
  huge.paste((0, 0, 0), (5000, 0, 10000, 10000))
  huge.save(path, quality=50)
  del huge
  predictor = _RecordingPredictor()
  inference.segment_files(predictor, [str(path)], str(tmp_path / "out"),
                          colormaps.create_pascal_label_colormap(),
                          max_image_size=1000)
  assert predictor.calls == [[(1000, 1000, 3)]]
  labels = Image.open(tmp_path / "out" / "huge.png")
  assert labels.size == (10000, 10000)  # Upsampled back to full size.
  assert labels.getpixel((100, 100)) == 1 and labels.getpixel((9900, 100)) == 0


def test_a_truncated_jpeg_is_named(tmp_path):
  path = tmp_path / "cut.jpg"
  Image.fromarray(np.random.default_rng(0).integers(
      0, 255, (64, 64, 3), np.uint8)).save(path)
  path.write_bytes(path.read_bytes()[:600])
  with pytest.raises(ValueError, match="cut.jpg"):
    inference.load_rgb(str(path))


def test_video_frames_are_segmented_into_a_video(tmp_path):
  import cv2  # pylint: disable=g-import-not-at-top
  source = str(tmp_path / "clip.avi")
  writer = cv2.VideoWriter(source, cv2.VideoWriter_fourcc(*"MJPG"), 10,
                           (48, 32))
  for index in range(5):
    frame = np.full((32, 48, 3), 40 * index, np.uint8)
    writer.write(frame)
  writer.release()
  output = str(tmp_path / "out" / "clip_overlay.mp4")
  count = inference.segment_video(_RecordingPredictor(), source, output,
                                  colormaps.create_pascal_label_colormap())
  assert count == 5
  capture = cv2.VideoCapture(output)
  frames = 0
  while capture.read()[0]:
    frames += 1
  assert frames == 5
  assert inference.is_video(source) and not inference.is_video("a.jpg")
  with pytest.raises(ValueError, match="missing.mp4"):
    inference.segment_video(_RecordingPredictor(), str(tmp_path / "missing.mp4"),
                            output, colormaps.create_pascal_label_colormap())
