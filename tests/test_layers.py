"""The package's layers (README "Layout"): each part imports only the parts below it, counting
imports inside functions, and the library never imports a front-end (the command line, the book)."""

from __future__ import annotations

import ast
from pathlib import Path

import hinas

ROOT = Path(hinas.__file__).resolve().parent

# from the bottom; a part may import its own modules and those of a lower rank
RANK = {"errors": 0, "safeio": 1, "space": 2, "data": 2, "losses": 2, "eval": 3, "viz": 3, "engine": 4,
        "bench": 5, "deploy": 5, "campaign": 6, "cli": 7, "book": 7, "__main__": 8}
FRONT_ENDS = ("cli", "book", "__main__")


def _part(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "hinas" else None


def _imports(path: Path):
    """Every ``hinas.*`` module a file imports, at any depth of the file (functions included)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            if node.module == "hinas":  # from hinas import space
                yield from (f"hinas.{a.name}" for a in node.names)


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        yield path, rel.parts[0]


def test_every_part_has_a_rank():
    parts = {p for _, p in _modules()} - {"__init__"}
    assert parts <= set(RANK), f"parts without a layer in RANK: {sorted(parts - set(RANK))}"


def test_each_part_imports_only_the_parts_below_it():
    wrong = []
    for path, part in _modules():
        if part == "__init__":  # the lazy public API (hinas/__init__.py) names library modules only
            continue
        for module in _imports(path):
            other = _part(module)
            if other is None or other == part or other == "__init__":
                continue
            if other not in RANK:
                wrong.append(f"{path.relative_to(ROOT)} imports {module}: a part with no layer")
            elif RANK[other] >= RANK[part] and not (part in FRONT_ENDS and other in FRONT_ENDS):
                wrong.append(f"{path.relative_to(ROOT)} ({part}) imports {module} ({other}), a layer not below it")
    assert not wrong, "\n".join(wrong)


def test_the_library_never_imports_a_front_end():
    wrong = [f"{path.relative_to(ROOT)} imports {module}" for path, part in _modules() if part not in FRONT_ENDS
             for module in _imports(path) if _part(module) in FRONT_ENDS]
    assert not wrong, "\n".join(wrong)


def test_the_public_api_names_library_modules_only():
    assert all(_part(m) not in FRONT_ENDS for m in hinas._EXPORTS.values())


def test_at_most_eight_modules_at_the_top():
    top = sorted(p.name for p in ROOT.glob("*.py"))
    assert len(top) <= 8, top
