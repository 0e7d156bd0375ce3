"""The project's own source files as syntax trees, parsed once per test process: several tests
read every module, and parsing them again for each is most of their time."""

from __future__ import annotations

import ast
import functools
from pathlib import Path


def syntax_tree(path: Path) -> ast.Module:
    """``path`` parsed; the cache is keyed on the text, so a file that changed is parsed again."""
    return _parse(path.read_text(), str(path))


@functools.cache
def _parse(text: str, filename: str) -> ast.Module:
    return ast.parse(text, filename)
