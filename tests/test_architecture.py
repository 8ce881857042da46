"""The package's shape: no import cycle, and a mechanism is one module (``mask`` shown end to end)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

import streamdp

PACKAGE = Path(streamdp.__file__).parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _import_time_imports(path: Path, modules: set[str]) -> set[str]:
    """The streamdp modules ``path`` imports when it is imported (module level, outside
    ``if TYPE_CHECKING``; imports inside functions run later and cannot form an import cycle)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and not _is_type_checking(node):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("streamdp"))
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if not target.startswith("streamdp"):
                    continue
                found.add(target)
                for alias in node.names:  # ``from . import x``: x may be a submodule
                    if f"{target}.{alias.name}" in modules:
                        found.add(f"{target}.{alias.name}")

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    # importing a.b.c imports a and a.b first
    for mod in list(found):
        parts = mod.split(".")
        found.update(".".join(parts[:i]) for i in range(1, len(parts)))
    found.discard(name)
    return {m for m in found if m in modules}


def test_no_import_cycle() -> None:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: _import_time_imports(path, set(files)) for name, path in files.items()}
    # A package's __init__ importing its own submodules is how packages work, not a cycle.
    for name in graph:
        graph[name] = {m for m in graph[name] if not m.startswith(name + ".")}
    colour: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> None:
        colour[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if colour.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in colour:
                dfs(nxt)
        stack.pop()
        colour[node] = 2

    for node in sorted(graph):
        if node not in colour:
            dfs(node)


def test_mask_mechanism_is_one_module_seen_everywhere(tmp_path: Path) -> None:
    """``mechanisms/mask.py`` is the only file that names ``mask``: the config schema, the CLIs'
    help, the live fallback choices and the evaluation's sweep all know it from its declaration."""
    from streamdp.cli import _parser
    from streamdp.config import load_config
    from streamdp.eval.settings import parse_settings

    # (train/ uses "mask" as a tensor's key: not the mechanism)
    hits = [p for p in PACKAGE.rglob("*.py")
            if "train" not in p.relative_to(PACKAGE).parts and '"mask"' in p.read_text(encoding="utf-8")]
    assert [p.name for p in hits] == ["mask.py"]
    config = load_config(None, {"mechanism.name": "mask", "mechanism.mask.color": [10, 20, 30],
                                "live.fallback": "mask"})
    assert config.mechanism.mask.color == (10, 20, 30)
    with pytest.raises(Exception, match="unknown key"):
        load_config(None, {"mechanism.mask.colour": [1, 2, 3]})
    assert "mask:" in _parser().format_help() or "mask" in _parser()._subparsers._group_actions[0].choices[
        "run"].format_help()
    assert [s.family for s in parse_settings(["mask"], None, config)] == ["mask"]
    assert parse_settings(["mask"], None, config)[0].overrides() == {"mechanism.name": "mask"}


def test_mask_covers_the_face_end_to_end(tmp_path: Path) -> None:
    """``streamdp run -m mask`` on a real photo: the face box is flat (no detail left), the
    report names the mechanism."""
    import cv2

    from streamdp.cli import main
    from streamdp.detect import FaceDetector

    from conftest import MEDIA, need_shared, read_rgb

    src = need_shared(MEDIA / "single_face.jpg")
    out, rep = tmp_path / "out.png", tmp_path / "r.json"
    assert main(["run", str(src), "-o", str(out), "-m", "mask", "-q", "--report", str(rep)]) == 0
    report = json.loads(rep.read_text())
    assert report["files"][0]["mechanism"]["name"] == "mask"
    img, res = read_rgb(src), read_rgb(out)
    with FaceDetector() as det:
        box = det.detect(img, 0).boxes[0].astype(int)
    x0, y0, x1, y1 = box
    inner = cv2.cvtColor(np.ascontiguousarray(res[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY).astype(float)
    lap = cv2.Laplacian(inner, cv2.CV_64F)
    # flat fills and two ellipse edges: nearly every pixel has zero second derivative
    assert (np.abs(lap) < 1).mean() > 0.9


def test_no_module_does_several_jobs_by_size() -> None:
    """Modules stay small enough to hold one job (issue #13: about 400 lines; 450 is the bound)."""
    big = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > 450}
    assert not big, f"split these along their jobs: {big}"
