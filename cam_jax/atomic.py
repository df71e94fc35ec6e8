"""Atomic file writes: a reader finds the previous file or the complete new one, never a half-written one."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path beside `path` (same folder, same extension) to write to; it is moved onto
    `path` when the block ends and removed if the block raises.

    Example:
      >>> import numpy as np, tempfile, os
      >>> target = os.path.join(tempfile.mkdtemp(), "a.npy")
      >>> with atomic_path(target) as staging:
      ...     np.save(staging, np.zeros(3))
      >>> np.load(target).shape
      (3,)
    """
    path = os.fspath(path)
    fd, staging = tempfile.mkstemp(prefix=".cam_jax-", suffix=os.path.splitext(path)[1],
                                   dir=os.path.dirname(os.path.abspath(path)))
    os.close(fd)
    try:
        yield staging
        os.replace(staging, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging)
        raise


def write_json(path: str | os.PathLike, value: Any) -> None:
    """`value` as indented JSON at `path`, atomically (see `atomic_path`)."""
    with atomic_path(path) as staging, open(staging, "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")
