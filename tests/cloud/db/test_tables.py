"""``cloud.db.tables`` imports every module that declares a table: ``METADATA`` misses none."""

import ast

from cityops.paths import REPO_ROOT
from cloud.db.base import Base


def _declares_a_table(tree: ast.Module) -> bool:
    return any(
        isinstance(node, ast.ClassDef)
        and any(isinstance(b, ast.Name) and b.id == Base.__name__ for b in node.bases)
        for node in ast.walk(tree)
    )


def test_the_registry_imports_every_module_that_declares_a_table() -> None:
    declaring = set()
    for path in sorted((REPO_ROOT / "cloud").rglob("*.py")):
        if _declares_a_table(ast.parse(path.read_text(), filename=str(path))):
            declaring.add(".".join(path.relative_to(REPO_ROOT).with_suffix("").parts))
    registry = ast.parse((REPO_ROOT / "cloud" / "db" / "tables.py").read_text())
    imported = {a.name for n in registry.body if isinstance(n, ast.Import) for a in n.names}
    assert declaring, "no table module found: the scan is broken"
    assert declaring <= imported, f"not imported by cloud/db/tables.py: {declaring - imported}"
