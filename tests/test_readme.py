"""The README's code examples run, in order, in one namespace: an example that drifts fails here."""

from __future__ import annotations

import re


def test_readme_python_blocks_run():
    with open("README.md") as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)
    assert len(blocks) >= 3
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102  the project's own README
