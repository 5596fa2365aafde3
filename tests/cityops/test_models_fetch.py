"""`cityops models fetch` verifies pinned sha256 sums; served here by a local HTTP server."""

import http.server
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cityops.models import ModelFetchError, fetch, models_present


@pytest.fixture
def zip_server(tmp_path: Path, material: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    good = root / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.write(material / "models" / "detect.tflite", "detect.tflite")
        zf.write(material / "models" / "labelmap.txt", "labelmap.txt")
    with zipfile.ZipFile(root / "tampered.zip", "w") as zf:
        zf.writestr("detect.tflite", b"not the model")
        zf.write(material / "models" / "labelmap.txt", "labelmap.txt")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def test_fetch_verifies_and_writes(zip_server: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = zip_server
    out = tmp_path / "models"
    written = fetch(out, f"{url}/good.zip")
    assert {p.name for p in written} == {"detect.tflite", "labelmap.txt"}
    assert models_present(out)


def test_tampered_archive_writes_nothing(zip_server: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = zip_server
    out = tmp_path / "models"
    with pytest.raises(ModelFetchError, match="sha256"):
        fetch(out, f"{url}/tampered.zip")
    assert not out.exists()


def test_unreachable_mirror_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ModelFetchError, match="by hand"):
        fetch(tmp_path, "http://127.0.0.1:9/none.zip", timeout=2)
