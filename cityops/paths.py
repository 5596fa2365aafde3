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


FACE_MODEL_NAME = "face_detection_back.tflite"
AUDIT_MODEL_NAME = "face_detection_full_range.tflite"
MODELS_DIR_ENV = "CITYOPS_MODELS_DIR"


def models_cache_dir() -> Path:
    """Where `cityops models fetch` puts what the provided material lacks (the face model).

    ``$CITYOPS_MODELS_DIR``, else ``$XDG_CACHE_HOME/cityops/models`` (``~/.cache/...``).
    """
    if os.environ.get(MODELS_DIR_ENV):
        return Path(os.environ[MODELS_DIR_ENV]).resolve()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "cityops" / "models"


def face_model_path() -> Path | None:
    """The BlazeFace model: beside the detector (on a device), else in the models cache."""
    for folder in (material_dir() / "models", models_cache_dir()):
        if (folder / FACE_MODEL_NAME).is_file():
            return folder / FACE_MODEL_NAME
    return None


def audit_model_path() -> Path | None:
    """The privacy auditor's face model (BlazeFace full range), where `models fetch` put it."""
    for folder in (material_dir() / "models", models_cache_dir()):
        if (folder / AUDIT_MODEL_NAME).is_file():
            return folder / AUDIT_MODEL_NAME
    return None
