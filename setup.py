"""Packaging for deeplab: the repo root is the import package `deeplab`."""

import pathlib

import setuptools

_HERE = pathlib.Path(__file__).parent
# The library's sub-packages; tests, bench and scripts are not shipped.
_PACKAGES = ["deeplab"] + [
    "deeplab." + name for name in setuptools.find_packages(
        where=str(_HERE), include=["core", "core.*", "datasets", "datasets.*"])
]

setuptools.setup(
    name="deeplab",
    version="0.2.0",
    description="DeepLabv3+ semantic segmentation on TensorFlow 2.21 / Keras 3.",
    long_description=(_HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    license_files=["LICENSE"],
    classifiers=[
        "Development Status :: 4 - Beta",
        "Intended Audience :: Developers",
        "Intended Audience :: Science/Research",
        "Operating System :: OS Independent",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
    python_requires=">=3.10",
    package_dir={"deeplab": "."},
    packages=_PACKAGES,
    # The dense prediction cell presets (--dense_prediction_cell_json).
    package_data={"deeplab.core.modeling.heads": ["dpc_configs/*.json"]},
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
        "export": ["tf2onnx~=1.17", "onnxruntime", "ai-edge-litert",
                   "mnn~=3.6"],
        "crf": ["pydensecrf2"],
        "video": ["opencv-python-headless"],
        "serving": ["tensorflow-serving-api~=2.21.0"],
        # Tests exercise every export format and video input.
        "test": ["pytest", "pytest-timeout", "pytest-xdist>=3.8", "tf2onnx~=1.17",
                 "onnxruntime", "ai-edge-litert", "mnn~=3.6",
                 "opencv-python-headless",
                 "tensorflow-serving-api~=2.21.0"],
    },
    entry_points={
        "console_scripts": [
            "deeplab-train = deeplab.train:run",
            "deeplab-eval = deeplab.evaluate:run",
            "deeplab-export = deeplab.export_model:run",
            "deeplab-infer = deeplab.inference:run",
            "deeplab-vis = deeplab.vis:run",
        ],
    },
)
