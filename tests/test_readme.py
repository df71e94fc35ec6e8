"""The code examples of the README and the docs run, each file's in order in one namespace: an example
that drifts fails here."""

from __future__ import annotations

import re

import pytest


@pytest.mark.parametrize("path", ["README.md", "docs/GUIDE.md", "docs/REPRODUCTION.md", "docs/METRICS.md"])
def test_python_blocks_run(path):
    with open(path) as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)
    assert blocks
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, path, "exec"), namespace)  # noqa: S102  the project's own docs


def test_readme_is_short_and_opens_with_the_two_commands():
    with open("README.md") as f:
        text = f.read()
    assert len(text.splitlines()) <= 250
    with open(".ci/run") as f:
        ci = f.read()
    test_command = re.search(r"python3 -m venv .*python -m pytest", ci).group(0)
    assert test_command in text and "python scripts/eval.py" in text
