"""The layout: stages import only upstream, no circles, the math free of Beam, small modules.

The import graph is read from the source with ``ast`` (lazy imports inside functions
count too), and the math's freedom from Beam is also checked by really importing it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

# The order the data travels, with the parts that stand apart placed where their
# imports put them: a package may import only those before it (and itself).
ORDER = ("config", "discover", "read", "reduce", "fit", "observe", "table", "graph", "report")
# The math: no Beam, ever (TensorFlow only in the compiled loop and its losses).
MATH = ("pipeline.fit", "pipeline.reduce.moments", "pipeline.config.settings", "pipeline.config.errors")
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    found = {}
    for top in ("pipeline", "jobs"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Modules ``name`` imports (ours resolved to modules; others by their top name)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
    return found


def _with_parents(module: str) -> set[str]:
    """Importing ``a.b.c`` runs ``a`` and ``a.b`` first."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def _edges(name: str, path: Path) -> set[str]:
    """What importing ``name`` runs: its imports and their packages, but not its own packages (already running)."""
    own = _with_parents(name) if path.name == "__init__.py" else _with_parents(name.rpartition(".")[0])
    return {dep for target in _imports(name, path) for dep in _with_parents(target)} - own - {name}


GRAPH = {name: _edges(name, path) for name, path in MODULES.items()}


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "pipeline" and len(parts) > 1 else None


def _reach(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for dep in GRAPH.get(todo.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_every_stage_is_in_the_order() -> None:
    stages = {_stage(m) for m in MODULES} - {None}
    assert stages == set(ORDER), "add a new subpackage to ORDER (and to docs/development.md)"


def test_stages_import_only_upstream() -> None:
    wrong = []
    for module, deps in GRAPH.items():
        stage = _stage(module)
        for dep in deps:
            other = _stage(dep)
            if module.startswith("pipeline") and dep.startswith("jobs"):
                wrong.append(f"{module} -> {dep} (the library imports a launcher)")
            elif stage and other and other != stage and ORDER.index(other) > ORDER.index(stage):
                wrong.append(f"{module} -> {dep} ({stage} imports {other}, which comes after it)")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_circle_between_modules() -> None:
    circles = []
    for module in MODULES:
        if module in _reach(module):
            circles.append(module)
    assert not circles, f"modules on an import circle: {circles}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith(MATH)))
def test_the_math_never_imports_beam(module: str) -> None:
    reached = _reach(module)
    assert not {dep for dep in reached if dep.split(".")[0] == "apache_beam"}, f"{module} reaches Beam"
    tensorflow = {m for m in [module, *reached] if "tensorflow" in GRAPH.get(m, ())}
    compiled = {"pipeline.fit.descent", "pipeline.fit.loops", "pipeline.fit.losses"}
    assert tensorflow <= compiled, f"TensorFlow outside the loop: {tensorflow}"


def test_the_math_imports_without_beam_or_tensorflow() -> None:
    code = (
        "import sys\n"
        "import pipeline.fit, pipeline.reduce.moments, pipeline.config\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'apache_beam', 'tensorflow'}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_modules_are_small() -> None:
    long = {
        name: lines
        for name, path in MODULES.items()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_graph_sees_lazy_imports() -> None:
    """A guard on the test itself: an import inside a function is an edge too."""
    assert "pipeline.fit.descent" in GRAPH["pipeline.fit.fitter"]
