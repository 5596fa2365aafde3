"""A project CA and TLS certificates (server, and one client cert per device, CN = device id).

Uses the ``openssl`` command line, present on every Debian and balenaOS build host.
"""

import subprocess
from dataclasses import dataclass
from pathlib import Path

from shared.topics import validate_device_id


@dataclass(frozen=True, slots=True)
class CertPair:
    cert: Path
    key: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(directory: Path, name: str = "CityOps Device CA", days: int = 3650) -> CertPair:
    directory.mkdir(parents=True, exist_ok=True)
    pair = CertPair(directory / "ca.crt", directory / "ca.key")
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(pair.key), "-out", str(pair.cert), "-days", str(days),
        "-subj", f"/CN={name}",
    )  # fmt: skip
    pair.key.chmod(0o600)
    return pair


def issue_cert(
    ca: CertPair,
    directory: Path,
    common_name: str,
    *,
    server_names: list[str] | None = None,
    days: int = 825,
) -> CertPair:
    """Issue a cert signed by *ca*; with *server_names* it gets subjectAltNames for a server."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = common_name.replace("/", "_")
    pair = CertPair(directory / f"{stem}.crt", directory / f"{stem}.key")
    csr = directory / f"{stem}.csr"
    ext = directory / f"{stem}.ext"
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(pair.key), "-out", str(csr), "-subj", f"/CN={common_name}",
    )  # fmt: skip
    if server_names:
        alt = ",".join(
            f"IP:{n}" if n.replace(".", "").isdigit() else f"DNS:{n}" for n in server_names
        )
        ext.write_text(f"subjectAltName={alt}\nextendedKeyUsage=serverAuth\n")
    else:
        ext.write_text("extendedKeyUsage=clientAuth\n")
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
        "-CAcreateserial", "-out", str(pair.cert), "-days", str(days), "-extfile", str(ext),
    )  # fmt: skip
    csr.unlink()
    ext.unlink()
    pair.key.chmod(0o600)
    return pair


def issue_device_cert(ca: CertPair, directory: Path, device_id: str) -> CertPair:
    """Client cert whose CN is the device id (Mosquitto ``use_identity_as_username``)."""
    return issue_cert(ca, directory, validate_device_id(device_id))
