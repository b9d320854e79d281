"""Locate the CDNOW master transaction file shipped in the lifetimes 0.11.3 distribution."""

import hashlib
import importlib.util
from pathlib import Path

CDNOW_SHA256 = "eff6889ed364c5199d6eacbbeb7a6d559971df4406ac876f322c373f00a072ef"


class DatasetError(RuntimeError):
    """Raised when a data set is missing or does not match its checksum."""


def verify_sha256(path: Path, expected: str) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise DatasetError(f"{path} has sha256 {digest}, expected {expected}; the file is not the CDNOW master file.")


def cdnow_master_path() -> Path:
    """Return the checksum-verified CDNOW file from the installed lifetimes package (not imported)."""
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("The lifetimes package is not installed; run `pip install lifetimes==0.11.3` or pass --cdnow PATH.")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "CDNOW_master.txt"
    if not path.is_file():
        raise DatasetError(f"{path} is missing from the lifetimes package; pass --cdnow PATH.")
    verify_sha256(path, CDNOW_SHA256)
    return path
