"""Readable class names: from a weight file's metadata, or ImageNet's from tensorflow-datasets."""

from __future__ import annotations

from typing import Any


def imagenet_synsets() -> list[str] | None:
    """The 1000 ILSVRC2012 synset ids in class order, from the tfds package (None if absent)."""
    try:
        from importlib import resources

        import tensorflow_datasets  # noqa: F401  optional: pip install cam_jax[imagenet]
    except ImportError:
        return None
    for package in ("tensorflow_datasets.datasets.imagenet2012", "tensorflow_datasets.image_classification"):
        for name in ("labels.txt", "imagenet2012_labels.txt"):
            try:
                text = resources.files(package).joinpath(name).read_text()
            except (FileNotFoundError, ModuleNotFoundError, TypeError):
                continue
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            if len(lines) == 1000:
                return lines
    return None


def class_names(meta: dict[str, Any], num_classes: int) -> list[str]:
    """Names for each class: metadata `class_names`, else ImageNet synsets, else 'class k'."""
    names = meta.get("class_names")
    if names and len(names) == num_classes:
        return list(names)
    if num_classes == 1000:
        synsets = imagenet_synsets()
        if synsets:
            return synsets
    return [f"class {k}" for k in range(num_classes)]
