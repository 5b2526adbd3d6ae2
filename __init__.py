"""deeplab: DeepLabv3+ semantic segmentation on TensorFlow 2.21 and Keras 3."""

__version__ = "0.1.0"
