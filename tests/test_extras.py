"""Each extra holds what its component imports: no more (AST scan), no less (a bare venv).

No less: for each component a venv is made with ``--without-pip`` (no download, ~0.1 s) whose
only site-packages entry is a folder of links to the distributions of the base dependencies and
that extra, with their dependencies, as installed in the project's environment; every module of
the component is then imported there. Cheaper than ``pip install`` per extra (minutes, network)
and stricter than ``pip install --dry-run`` (which resolves names but imports nothing).
No more: every distribution of an extra is imported somewhere in its component's sources, or is
listed below as a run-time plug-in with the reason.
"""

import ast
import importlib.metadata as md
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from cityops.paths import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
COMPONENTS = {
    "edge": ("edge", "shared", "firmware.healthcheck", "firmware.update_lock"),
    "cloud": ("cloud", "shared"),
    "provisioning": ("provisioning", "shared"),
}
RUNTIME_PLUGINS = {
    "websockets": "uvicorn's WebSocket protocol (/api/v1/live), loaded by uvicorn",
    "jinja2": "the console's templates, loaded by fastapi.templating.Jinja2Templates",
}
MUST_NOT_IMPORT = {
    "edge": ("fastapi", "sqlalchemy", "balena"),
    "cloud": ("cv2", "numpy", "balena"),
    "provisioning": ("paho", "fastapi", "sqlalchemy"),
}


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", Requirement(requirement).name).lower()


def _closure(requirements: list[str]) -> set[str]:
    """Installed distributions the requirements need, dependencies included (no extras)."""
    todo = [_name(r) for r in requirements]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for req in md.distribution(name).requires or []:
            parsed = Requirement(req)
            if parsed.marker is None or parsed.marker.evaluate({"extra": ""}):
                todo.append(_name(req))
    return seen


def _top_level(dist: str) -> set[str]:
    files = md.distribution(dist).files or []
    return {f.parts[0] for f in files if f.parts and f.parts[0] != ".."}


def _modules(package: str) -> list[str]:
    path = REPO_ROOT / package.replace(".", "/")
    if path.with_suffix(".py").is_file():
        return [package]
    return sorted(
        ".".join(p.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in path.rglob("*.py")
        if "device" not in p.parts  # MicroPython sources
        and p.parts[-2:] != ("migrations", "env.py")  # run by Alembic, never imported
    )


def _imports(packages: tuple[str, ...]) -> set[str]:
    found: set[str] = set()
    for package in packages:
        root = REPO_ROOT / package.replace(".", "/")
        files = (
            [root.with_suffix(".py")] if root.with_suffix(".py").is_file() else root.rglob("*.py")
        )
        for path in files:
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    found.add(node.module.split(".")[0])
    return found


def _venv_with(tmp_path: Path, dists: set[str]) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    real = Path(str(md.distribution("pydantic").locate_file("")))
    for dist in dists:
        for top in _top_level(dist):
            if not (site / top).exists() and (real / top).exists():
                (site / top).symlink_to(real / top)
    venv = tmp_path / "venv"
    base_python = getattr(sys, "_base_executable", sys.executable)  # the venv's own interpreter
    subprocess.run([base_python, "-m", "venv", "--without-pip", str(venv)], check=True)
    (pth,) = venv.glob("lib/python3*/site-packages")
    (pth / "cityops-extras.pth").write_text(f"{REPO_ROOT}\n{site}\n")
    return venv / "bin" / "python"


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_extra_lists_only_what_the_component_imports(component: str) -> None:
    imported = _imports(COMPONENTS[component])
    for requirement in PYPROJECT["project"]["optional-dependencies"][component]:
        dist = _name(requirement)
        if dist in RUNTIME_PLUGINS:
            continue
        names = {t.removesuffix(".py") for t in _top_level(dist)}
        assert names & imported, f"[{component}] {dist} is in the extra but never imported"


@pytest.mark.parametrize("component", sorted(COMPONENTS))
def test_component_imports_with_only_its_extra(component: str, tmp_path: Path) -> None:
    base = PYPROJECT["project"]["dependencies"]
    extra = PYPROJECT["project"]["optional-dependencies"][component]
    python = _venv_with(tmp_path, _closure([*base, *extra]))
    modules = [m for p in COMPONENTS[component] for m in _modules(p)]
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"for name in {MUST_NOT_IMPORT[component]!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError:\n"
        "        continue\n"
        "    sys.exit(f'{name} is importable: the venv is not limited to the extra')\n"
        "print(len(sys.modules))\n"
    )
    result = subprocess.run(
        [str(python), "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"[{component}] {result.stderr[-3000:]}{result.stdout}"
