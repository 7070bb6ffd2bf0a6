"""Size limits of the application code, checked by ``make lint``.

No module in api/, core/, worker/ or migrate/ longer than MAX_MODULE_LINES,
no function or method longer than MAX_FUNCTION_LINES (physical lines, from
``def`` to its last line; decorators not counted). Tests and the generated
migrations (migrate/versions/) are not checked.

usage: python tools/check_shape.py [path ...]   (default: the four packages)
Prints one line per offender, ``file:line: what``, then their count; exits 1
if there is any.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 60
ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("api", "core", "worker", "migrate")
EXCLUDED = ("migrate/versions",)

Function = ast.FunctionDef | ast.AsyncFunctionDef


def python_files(paths: list[Path]) -> Iterator[Path]:
    """The .py files under ``paths``, sorted, without the excluded folders."""
    for path in paths:
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        for file in files:
            shown = display(file)
            if not any(shown == ex or shown.startswith(f"{ex}/") for ex in EXCLUDED):
                yield file


def display(path: Path) -> str:
    """``path`` relative to the repository when it is inside it."""
    resolved = path.resolve()
    return resolved.relative_to(ROOT).as_posix() if resolved.is_relative_to(ROOT) else str(path)


def functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, Function]]:
    """Every function and method, nested ones too, with a dotted name."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            name = f"{prefix}{node.name}"
            yield name, node
            yield from functions(node, f"{name}.")
        elif isinstance(node, ast.ClassDef):
            yield from functions(node, f"{prefix}{node.name}.")
        else:
            yield from functions(node, prefix)


def offences(path: Path) -> Iterator[str]:
    """One line per limit ``path`` breaks."""
    source = path.read_text(encoding="utf-8")
    shown = display(path)
    length = len(source.splitlines())
    if length > MAX_MODULE_LINES:
        yield f"{shown}:1: module has {length} lines (limit {MAX_MODULE_LINES})"
    for name, node in functions(ast.parse(source, filename=shown)):
        lines = (node.end_lineno or node.lineno) - node.lineno + 1
        if lines > MAX_FUNCTION_LINES:
            yield (
                f"{shown}:{node.lineno}: function {name} has {lines} lines "
                f"(limit {MAX_FUNCTION_LINES})"
            )


def main(argv: list[str]) -> int:
    """Print the offenders and their count; 1 if there is any."""
    paths = [Path(arg) for arg in argv] or [ROOT / package for package in PACKAGES]
    found = [line for file in python_files(paths) for line in offences(file)]
    for line in found:
        print(line)
    if found:
        print(
            f"{len(found)} offender(s): modules over {MAX_MODULE_LINES} lines or "
            f"functions over {MAX_FUNCTION_LINES} lines"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
