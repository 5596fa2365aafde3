"""``cityops models fetch``: download the public COCO SSD MobileNet v1 detector (sha256-pinned)."""

import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx

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


class ModelFetchError(RuntimeError):
    pass


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def models_present(directory: Path) -> bool:
    return all(
        (directory / p.target).exists()
        and sha256_of((directory / p.target).read_bytes()) == p.sha256
        for p in PINNED
    )


def fetch(directory: Path, url: str = MODEL_URL, timeout: float = 60.0) -> list[Path]:
    """Download the zip, verify every pinned file's sha256, then write them; nothing on mismatch."""
    try:
        resp = httpx.get(url, timeout=timeout, follow_redirects=True)
        resp.raise_for_status()
    except httpx.HTTPError as exc:
        raise ModelFetchError(
            f"could not download {url}: {exc}. Offline? Put detect.tflite and labelmap.txt "
            f"into {directory} by hand."
        ) from exc
    try:
        archive = zipfile.ZipFile(io.BytesIO(resp.content))
    except zipfile.BadZipFile as exc:
        raise ModelFetchError(f"{url} did not return a zip file") from exc
    names = {Path(n).name: n for n in archive.namelist()}
    blobs: dict[str, bytes] = {}
    for pinned in PINNED:
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
