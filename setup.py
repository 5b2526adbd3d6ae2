"""Packaging for deeplab: the repo root is the import package `deeplab`."""

import setuptools

setuptools.setup(
    name="deeplab",
    version="0.1.0",
    description="DeepLabv3+ semantic segmentation on TensorFlow 2.21 / Keras 3.",
    python_requires=">=3.10",
    package_dir={"deeplab": "."},
    packages=["deeplab", "deeplab.core", "deeplab.datasets"],
    install_requires=[
        "tensorflow~=2.21.0",
        "tensorboard~=2.21.0",
        "keras>=3.10",
        "absl-py",
        "numpy",
        "Pillow",
        "scipy",
        "matplotlib",
        "tqdm",
        "scikit-image",
        "imgviz",
        "pycocotools",
        "cityscapesscripts",
    ],
    extras_require={
        "export": ["tf2onnx~=1.17", "onnxruntime", "ai-edge-litert"],
        "crf": ["pydensecrf2"],
        "video": ["opencv-python-headless"],
        "serving": ["tensorflow-serving-api~=2.21.0"],
        # Tests exercise every export format and video input.
        "test": ["pytest", "pytest-timeout", "tf2onnx~=1.17", "onnxruntime",
                 "ai-edge-litert", "opencv-python-headless",
                 "tensorflow-serving-api~=2.21.0"],
    },
    entry_points={
        "console_scripts": [
            "deeplab-train = deeplab.train:run",
            "deeplab-eval = deeplab.evaluate:run",
            "deeplab-export = deeplab.export_model:run",
            "deeplab-infer = deeplab.inference:run",
        ],
    },
)
