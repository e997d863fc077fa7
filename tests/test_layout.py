"""The layout promises of ARCHITECTURE.md: folders, and dependencies that point one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TOP_LEVEL = (
    "coordinator",
    "node",
    "protos",
    "crypto",
    "models",
    "deploy",
    "tests",
    "bench",
    "docs",
)
# package -> packages it must never import
FORBIDDEN = {
    "node": ("fedrisk.coordinator",),
    "coordinator": ("fedrisk.node",),
    "models": ("fedrisk.node", "fedrisk.coordinator"),
    "crypto": ("fedrisk.node", "fedrisk.coordinator"),
    "protos": ("fedrisk.node", "fedrisk.coordinator"),
    "deploy": ("fedrisk.node", "fedrisk.coordinator"),  # runs processes; the apps meet in Flower
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("folder", TOP_LEVEL)
def test_top_level_folder_exists(folder: str) -> None:
    assert (REPO / folder).is_dir()


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependencies_point_one_way(package: str) -> None:
    offenders = []
    for path in (REPO / package).rglob("*.py"):
        for name in _imports(path):
            bare = name.removeprefix("fedrisk.")
            if any(
                name.startswith(f) or bare.startswith(f.removeprefix("fedrisk."))
                for f in FORBIDDEN[package]
            ):
                offenders.append(f"{path.relative_to(REPO)} imports {name}")
    assert offenders == []


def test_package_links_point_at_the_top_level_folders() -> None:
    for name in ("node", "coordinator", "crypto", "models", "protos", "deploy"):
        link = REPO / "fedrisk" / name
        assert link.is_symlink() and link.resolve() == (REPO / name).resolve()
