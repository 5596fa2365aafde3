"""Where the provided read-only material (``../shared``: model, footage, docs) lives."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_VAR = "CITYOPS_SHARED_DIR"


def material_dir() -> Path:
    """``$CITYOPS_SHARED_DIR`` or ``../shared`` beside the checkout (never copied into it)."""
    return Path(os.environ.get(ENV_VAR, REPO_ROOT.parent / "shared")).resolve()


def model_path() -> Path:
    return material_dir() / "models" / "detect.tflite"


def labels_path() -> Path:
    return material_dir() / "models" / "labelmap.txt"


def data_path(*parts: str) -> Path:
    return material_dir().joinpath("data", *parts)
