"""The package as installed: every subpackage listed, the default weights inside the wheel, the public API."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile

import cam_jax


def test_every_subpackage_is_listed_for_setuptools():
    with open("pyproject.toml", "rb") as f:
        listed = set(tomllib.load(f)["tool"]["setuptools"]["packages"])
    found = {root.replace(os.sep, ".") for root, _, files in os.walk("cam_jax") if "__init__.py" in files}
    assert found | {"cam_jax.weights"} == listed


def test_wheel_carries_the_subpackages_and_the_default_weights(tmp_path):
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                             "-w", str(tmp_path), "."], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("cam_jax-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("models", "cams", "manipulations", "metrics", "audit", "audit/checks", "data", "convert",
                    "evaluation", "testing"):
        assert f"cam_jax/{package}/__init__.py" in names
    assert {"cam_jax/weights/default.npz", "cam_jax/weights/README.md"} <= names


def test_public_api_names_no_module_twice():
    """`__all__` is sorted, each name importable, and no function hides a module of the same name."""
    assert list(cam_jax.__all__) == sorted(cam_jax.__all__)
    for name in cam_jax.__all__:
        assert hasattr(cam_jax, name), name
    import cam_jax.models.vgg as vgg_module

    assert vgg_module.build("vgg11").stages[0] == (64,)
    assert not callable(getattr(cam_jax, "vgg", None))
