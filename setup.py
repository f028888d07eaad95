"""Installs the vjepa2-ac distribution.

The repository keeps its sub-packages as top-level folders (``planners/``, ``envs/``, ``datasets/``,
``experiments/``) but they are installed *inside* ``vjepa2_ac`` via ``package_dir`` so that we never
shadow other distributions' top-level ``datasets`` or ``envs`` packages.
"""

from setuptools import find_packages, setup

SUBPACKAGES = ("planners", "envs", "datasets", "experiments")


def _packages():
    pkgs = ["vjepa2_ac"] + [f"vjepa2_ac.{p}" for p in find_packages("vjepa2_ac")]
    for sub in SUBPACKAGES:
        pkgs.append(f"vjepa2_ac.{sub}")
        pkgs += [f"vjepa2_ac.{sub}.{p}" for p in find_packages(sub)]
    return pkgs


setup(
    name="vjepa2-ac",
    version="0.1.0",
    description="V-JEPA 2-AC latent world model: models, DROID data, MuJoCo tasks, planners",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=_packages(),
    package_dir={"vjepa2_ac": "vjepa2_ac", **{f"vjepa2_ac.{s}": s for s in SUBPACKAGES}},
    package_data={"vjepa2_ac": ["configs/*.yaml"], "vjepa2_ac.experiments": ["assets/*"]},
    include_package_data=True,
    install_requires=[
        # 2.13.0 (the CPU wheel these machines install) satisfies this range.
        "torch>=2.3",
        "numpy>=1.26",
        "gymnasium>=1.0",
        "mujoco>=3.2",
        "h5py>=3.10",
        "av>=12",
        # LeRobot v3 datasets (parquet); the lerobot package itself is never needed.
        "pyarrow>=14",
        "tensorflow-datasets>=4.9",
        "importlib_resources",
        "pillow>=10",
        "matplotlib>=3.8",
        "tqdm>=4.66",
        "pyyaml>=6",
        "tensorboard>=2.15",
        # CRC32C of every RLDS record payload (C speed; the pure-Python fallback does ~6 MB/s).
        "google-crc32c>=1.5",
    ],
    extras_require={
        # Only needed to *write* RLDS with TensorFlow; reading never imports TensorFlow.
        "tf": ["tensorflow-cpu"],
        "test": ["pytest>=8", "ruff>=0.5"],
        # Gymnasium-Robotics Fetch tasks (envs/fetch.py). gymnasium-robotics 1.4.2 fails in reset under
        # MuJoCo 4, so this extra pins the MuJoCo it runs with; the package's own tasks run under it too.
        "fetch": ["gymnasium-robotics==1.4.2", "mujoco==3.3.0"],
    },
    entry_points={"console_scripts": ["vjepa2-ac=vjepa2_ac.experiments.cli:main"]},
)
