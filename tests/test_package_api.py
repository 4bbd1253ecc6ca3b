"""The package's public face: `from mint import ...`, its version, a light `import mint`, and an import
structure without circles (read from the source, so a circle hidden inside a function counts too)."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import mint

PACKAGE = Path(mint.__file__).parent


def test_the_main_classes_import_from_the_package_root():
    from mint import MintModel, MintPipeline
    from mint.inference.pipeline import MintPipeline as defined_pipeline
    from mint.modeling.mint import MintModel as defined_model

    assert MintModel is defined_model and MintPipeline is defined_pipeline
    assert mint.__version__ == metadata.version("mint-audio")
    assert set(mint.__all__) == {"__version__", *mint._EXPORTS}
    for name, module in mint._EXPORTS.items():
        assert getattr(mint, name) is getattr(importlib.import_module(module), name), name


def test_import_mint_loads_no_torch():
    code = "import sys, mint; mint.__version__; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, module: str) -> set[str]:
    """Every mint module `path` imports, at any depth of its code (relative imports resolved)."""
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "mint" or name.startswith("mint.")}


def test_the_subpackages_import_each_other_without_a_circle():
    """Between subpackages (mint.modeling, mint.objectives, mint.inference, ...): an edge A -> B when any
    module of A imports one of B; the graph must have no cycle."""

    def subpackage(name: str) -> str:
        return ".".join(name.split(".")[:2])

    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        module = _module_name(path)
        for target in _imports(path, module):
            if target != "mint" and subpackage(target) != subpackage(module):
                edges.setdefault(subpackage(module), set()).add(subpackage(target))
    assert edges, "no imports found: the scan is broken"

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        seen = set()
        while stack:
            node, trail = stack.pop()
            for successor in edges.get(node, ()):
                if successor == start:
                    return [*trail, start]
                if successor not in seen:
                    seen.add(successor)
                    stack.append((successor, [*trail, successor]))
        return None

    cycles = [cycle for start in sorted(edges) if (cycle := cycle_from(start))]
    assert not cycles, f"import circles between subpackages: {cycles}"


def test_inference_needs_nothing_from_evaluation_training_or_the_cli():
    """A served model loads only what answering needs: evaluation and training build on inference,
    never the other way round."""
    layers_above = ("mint.evaluation", "mint.training", "mint.cli", "mint.demo", "mint.serving")
    for path in (PACKAGE / "inference").rglob("*.py"):
        module = _module_name(path)
        above = sorted(name for name in _imports(path, module) if name.startswith(layers_above))
        assert not above, f"{module} imports {above}"
