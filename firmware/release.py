"""The balena release of the edge agent: stage a push-ready folder, list the agent's env vars.

``balena push`` uploads one folder whose root holds ``docker-compose.yml``; the agent image also
needs the Python sources and the detection model, which live elsewhere (the model is provided
material and never committed). ``stage`` assembles that folder::

    python -m firmware.release stage --out build/balena
    balena push my-fleet --source build/balena

The release carries the face model too (``face_detection_back.tflite``, fetched and checked by
``cityops models fetch``), beside the detector, so a unit blurs faces, not only heads.

``env-doc`` writes ``firmware/ENVIRONMENT.md``, every variable the agent reads, derived from the
JSON Schema of ``edge.settings.EdgeSettings`` (tests keep the file in step with the model).
"""

import argparse
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cityops.models import FACE_MODEL, sha256_of
from cityops.paths import FACE_MODEL_NAME, face_model_path, material_dir
from firmware.update_lock import LOCK_PATH

FIRMWARE_DIR = Path(__file__).resolve().parent
REPO_ROOT = FIRMWARE_DIR.parent
RELEASE_FILES = ("docker-compose.yml", "balena.yml")
PACKAGES = ("shared", "edge", "cloud", "provisioning", "firmware", "cityops")
"""Copied whole: setuptools finds them all, and ``cityops`` imports the others lazily or not."""
PROJECT_FILES = ("pyproject.toml", "README.md")
MODEL_FILES = ("detect.tflite", "labelmap.txt")
ENV_PREFIX = "CITYOPS_EDGE_"
NESTED = "__"
ENV_DOC = FIRMWARE_DIR / "ENVIRONMENT.md"
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache")


@dataclass(frozen=True, slots=True)
class StagedRelease:
    root: Path
    compose: Path
    model: Path
    face_model: Path


def _face_model(given: Path | None) -> Path:
    """The fetched face model, checked against its pinned sha256."""
    path = given or face_model_path()
    if path is None or not path.is_file():
        raise FileNotFoundError(
            f"face model: {FACE_MODEL_NAME} not found; run `cityops models fetch` first"
        )
    if sha256_of(path.read_bytes()) != FACE_MODEL.sha256:
        raise FileNotFoundError(f"face model: {path} does not match the pinned sha256")
    return path


def stage(
    out: Path,
    material: Path | None = None,
    repo: Path = REPO_ROOT,
    face_model: Path | None = None,
) -> StagedRelease:
    """Write a folder ``balena push --source`` accepts; replaces *out* if it exists."""
    material = material or material_dir()
    model_src = material / "models"
    missing = [name for name in MODEL_FILES if not (model_src / name).is_file()]
    if missing:
        raise FileNotFoundError(f"material: {', '.join(missing)} not found in {model_src}")
    face = _face_model(face_model)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in RELEASE_FILES:
        shutil.copy2(repo / "firmware" / name, out / name)
    shutil.copytree(repo / "firmware" / "agent", out / "agent", ignore=_IGNORE)
    src = out / "agent" / "src"
    src.mkdir()
    for name in PROJECT_FILES:
        shutil.copy2(repo / name, src / name)
    for package in PACKAGES:
        if (repo / package).is_dir():
            shutil.copytree(repo / package, src / package, ignore=_IGNORE)
    models = out / "agent" / "models"
    models.mkdir()
    for name in MODEL_FILES:
        shutil.copy2(model_src / name, models / name)
    shutil.copy2(face, models / FACE_MODEL_NAME)
    return StagedRelease(
        root=out,
        compose=out / "docker-compose.yml",
        model=models / MODEL_FILES[0],
        face_model=models / FACE_MODEL_NAME,
    )


# ------------------------------------------------------------------------------ environment


@dataclass(frozen=True, slots=True)
class EnvVar:
    name: str
    type: str
    default: str
    description: str


def _deref(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return _deref(defs[ref.rsplit("/", 1)[-1]], defs)
    return schema


def _object_of(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any] | None:
    """The object schema behind *schema* (also ``X | None``), or None for a leaf."""
    options = schema.get("anyOf", [schema])
    objects = [_deref(o, defs) for o in options if _deref(o, defs).get("type") == "object"]
    objects = [o for o in objects if "properties" in o]
    return objects[0] if len(objects) == 1 else None


def _type_of(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    options = [_deref(o, defs) for o in schema.get("anyOf", [schema])]
    names = []
    for o in options:
        kind = o.get("type", "json")
        if "enum" in o:
            kind = " | ".join(repr(v) for v in o["enum"])
        elif "const" in o:
            kind = repr(o["const"])
        names.append("JSON list" if kind == "array" else str(kind))
    return " or ".join(n for n in names if n != "null") + (" (optional)" if "null" in names else "")


def agent_env_vars(model: type[Any] | None = None) -> list[EnvVar]:
    """Every variable pydantic-settings reads for *model* (default ``EdgeSettings``).

    Nested models recurse with ``__`` (``CITYOPS_EDGE_UPLINK__OUTBOX__PATH``); lists and other
    values are leaves, given as JSON where they are not scalars. Fields excluded from the schema
    (``base_dir``) are set by the program, not by the environment.
    """
    if model is None:
        from edge.settings import EdgeSettings

        model = EdgeSettings
    schema: dict[str, Any] = model.model_json_schema()
    defs: dict[str, Any] = schema.get("$defs", {})
    found: list[EnvVar] = []
    program_set = {name for name, info in model.model_fields.items() if info.exclude}

    def walk(obj: dict[str, Any], prefix: str, seen: tuple[str, ...]) -> None:
        for name, prop in obj.get("properties", {}).items():
            if prefix == ENV_PREFIX and name in program_set:
                continue
            full = prefix + name.upper()
            nested = _object_of(prop, defs)
            title = nested.get("title", "") if nested is not None else ""
            if nested is not None and title not in seen:
                walk(nested, full + NESTED, (*seen, title))
                continue
            default = prop.get("default", "")
            found.append(
                EnvVar(
                    name=full,
                    type=_type_of(prop, defs),
                    default="" if default is None else str(default),
                    description=" ".join(str(prop.get("description", "")).split()),
                )
            )

    walk(schema, ENV_PREFIX, (str(schema.get("title", "")),))
    return sorted(found, key=lambda v: v.name)


CONTAINER_VARS = (
    EnvVar("CITYOPS_AGENT_CONFIG", "path", "/data/agent.yaml", "Agent YAML; if absent, env only."),
    EnvVar("CITYOPS_HEALTH_MAX_IDLE_S", "number", "180", "Seconds without an outbox write."),
    EnvVar("CITYOPS_RUN_DIR", "path", "/run", "Where the agent's pid file is kept."),
    EnvVar("CITYOPS_UPDATE_LOCK", "path", str(LOCK_PATH), "balena update lock."),
    EnvVar("UDEV", "flag", "1", "balena: let udev populate /dev for the cameras."),
)


def env_doc(variables: list[EnvVar] | None = None) -> str:
    rows = variables if variables is not None else agent_env_vars()
    lines = [
        "# Environment variables of the edge agent",
        "",
        "Generated by `python -m firmware.release env-doc` from `edge.settings.EdgeSettings`;",
        "`tests/firmware/test_release.py` fails when it is out of date. Set them as balena",
        "fleet or device variables. Values that are lists or objects are JSON. A variable wins",
        "over the same setting in the agent's YAML file (`CITYOPS_AGENT_CONFIG`, default",
        "`/data/agent.yaml`), which wins over the default: a device variable overrides the",
        "fleet-wide file.",
        "",
        "| Variable | Type | Default | Description |",
        "|---|---|---|---|",
    ]
    for v in rows:
        cells = [f"`{v.name}`", v.type, f"`{v.default}`" if v.default else "", v.description]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += [
        "",
        "Read by the container (`agent/entry.sh`, the health check), not by the agent:",
        "",
        "| Variable | Default | Description |",
        "|---|---|---|",
    ]
    lines += [f"| `{v.name}` | `{v.default}` | {v.description} |" for v in CONTAINER_VARS]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The balena release of the CityOps edge agent.")
    sub = parser.add_subparsers(dest="command", required=True)
    st = sub.add_parser("stage", help="Assemble a folder for `balena push --source`.")
    st.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "balena")
    st.add_argument("--material", type=Path, default=None, help="Provided material folder.")
    st.add_argument("--face-model", type=Path, default=None, help="face_detection_back.tflite.")
    doc = sub.add_parser("env-doc", help="Write firmware/ENVIRONMENT.md.")
    doc.add_argument("--out", type=Path, default=ENV_DOC)
    args = parser.parse_args(argv)
    if args.command == "stage":
        try:
            staged = stage(args.out, args.material, face_model=args.face_model)
        except FileNotFoundError as exc:
            sys.stderr.write(f"error: {exc}\n")
            return 2
        sys.stdout.write(f"staged {staged.root}: balena push <fleet> --source {staged.root}\n")
        return 0
    args.out.write_text(env_doc())
    sys.stdout.write(f"wrote {args.out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
