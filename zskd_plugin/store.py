"""On-disk store of Data Impressions: safetensors parts, per-part checksums and a manifest written last.

Layout of one store (a folder named by the key of everything that determines its content)::

    <root>/<name>-<key>/
        spec.json                  what was asked for (teacher hash, synthesis and Dirichlet settings, seed)
        parts/part-00003.safetensors   images (N, C, H, W) float32 in [0, 1], targets (N, K), losses (N,)
        parts/part-00003.json      sha256 and size of the part file, written after it
        manifest.json              written last; the store is complete only when it says so
        .lock                      cross-process lock held while parts are written

Every file is written to a temporary name in the same folder, flushed to disk and renamed, so an interrupted run
never leaves a file that looks complete. Nothing here unpickles: safetensors and JSON only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor

from .version import __version__

_logger = logging.getLogger(__name__)

__all__ = ["FORMAT_VERSION", "ImpressionStore", "PartData", "StoreError", "sha256_bytes"]

FORMAT_VERSION = 1


class StoreError(RuntimeError):
    """A store that cannot be read or written as asked."""


@dataclass
class PartData:
    """The tensors of one part."""

    images: Tensor
    targets: Tensor
    losses: Tensor


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename; on failure nothing is left behind.

    The file is created with mode 0666 less the umask, like any other output (``tempfile.mkstemp`` would make it
    0600, unreadable to the other users of a shared store)."""
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _read_json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when the file is missing, unreadable, not JSON, or JSON but not an object
    (``null``, ``[]``): a record that is not an object is as damaged as one that does not parse."""
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


class ImpressionStore:
    """One folder of Data Impression parts.

    Args:
        path: the store folder (created on first write).
        spec: JSON-serialisable description of what the store holds; written to ``spec.json`` and the manifest.
        num_parts: how many parts make the store complete.
    """

    def __init__(self, path: str | os.PathLike, spec: dict[str, Any], num_parts: int) -> None:
        self.path = Path(path)
        self.spec = spec
        self.num_parts = num_parts

    @classmethod
    def open(cls, path: str | os.PathLike) -> ImpressionStore:
        """A finished store by its folder alone (spec and part count from its manifest), e.g. to read DIs outside a
        pipeline; raises :class:`StoreError` when the folder holds no complete store."""
        manifest = _read_json_object(Path(path) / "manifest.json")
        if manifest is None or manifest.get("complete") is not True:
            raise StoreError(
                f"{path} holds no complete Data Impression store (no valid manifest.json); give a store folder under "
                "store_root that synthesis finished, or run `zskd synthesize` with its config"
            )
        return cls(path, manifest["spec"], int(manifest["num_parts"]))

    # -- paths ---------------------------------------------------------------------------------------------------
    @property
    def parts_dir(self) -> Path:
        return self.path / "parts"

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    @property
    def lock_path(self) -> Path:
        return self.path / ".lock"

    def part_path(self, index: int) -> Path:
        return self.parts_dir / f"part-{index:05d}.safetensors"

    def _part_meta_path(self, index: int) -> Path:
        return self.parts_dir / f"part-{index:05d}.json"

    # -- writing -------------------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Create the folder and ``spec.json``; raises :class:`StoreError` naming the fix if it is not writable."""
        try:
            self.parts_dir.mkdir(parents=True, exist_ok=True)
            probe = self.path / f".write-probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
            spec_path = self.path / "spec.json"
            if not spec_path.exists():
                _atomic_write(spec_path, json.dumps(self.spec, indent=2, sort_keys=True).encode())
        except OSError as exc:
            raise StoreError(
                f"cannot write the Data Impression store at {self.path} ({exc.strerror or exc}); set `store_root:` "
                "in the Data Impression dataset config to a writable folder, or fix the folder's permissions"
            ) from exc

    def write_part(self, index: int, part: PartData, info: dict[str, Any] | None = None) -> str:
        """Write part ``index`` atomically and return its sha256."""
        tensors = {
            "images": part.images.detach().to(torch.float32).contiguous().cpu(),
            "targets": part.targets.detach().to(torch.float32).contiguous().cpu(),
            "losses": part.losses.detach().to(torch.float32).contiguous().cpu(),
        }
        # No safetensors metadata: its header order varies between processes, and a resumed store must be
        # byte-identical to an uninterrupted one. The part's record (below) and the manifest carry the metadata.
        data = st_save(tensors)
        digest = sha256_bytes(data)
        meta = {
            "format_version": FORMAT_VERSION,
            "index": index,
            "sha256": digest,
            "bytes": len(data),
            "count": int(tensors["images"].shape[0]),
        }
        meta.update(info or {})
        try:
            _atomic_write(self.part_path(index), data)
            _atomic_write(self._part_meta_path(index), json.dumps(meta, sort_keys=True).encode())
        except OSError as exc:
            raise StoreError(
                f"could not write part {index} of the Data Impression store at {self.path} ({exc.strerror or exc}); "
                "no partial file was left behind and completed parts are kept. Free disk space or choose another "
                "store_root, then run again: only missing parts are synthesised"
            ) from exc
        return digest

    def finalize(self) -> dict[str, Any]:
        """Write ``manifest.json`` once every part is present and verified; returns the manifest."""
        parts = []
        for index in range(self.num_parts):
            meta = self.part_meta(index)
            if meta is None or not self.verify_part(index):
                raise StoreError(f"cannot finalise {self.path}: part {index} is missing or corrupted")
            parts.append(meta)
        manifest = {
            "complete": True,
            "format_version": FORMAT_VERSION,
            "plugin_version": __version__,
            "num_parts": self.num_parts,
            "num_impressions": sum(p["count"] for p in parts),
            "spec": self.spec,
            "parts": parts,
        }
        try:
            _atomic_write(self.manifest_path, json.dumps(manifest, indent=2, sort_keys=True).encode())
        except OSError as exc:
            raise StoreError(
                f"could not write the manifest of {self.path} ({exc.strerror or exc}); every part is kept. Free disk "
                "space or fix permissions and run again: nothing is synthesised twice"
            ) from exc
        return manifest

    # -- reading -------------------------------------------------------------------------------------------------
    def part_meta(self, index: int) -> dict[str, Any] | None:
        """The record written beside part ``index``; None when it is missing or damaged (not a JSON object)."""
        return _read_json_object(self._part_meta_path(index))

    def _verified_bytes(self, index: int) -> bytes | None:
        """The bytes of part ``index`` when they match the record written with them, else None."""
        meta = self.part_meta(index)
        try:
            data = self.part_path(index).read_bytes()
        except OSError:
            return None
        if meta is None or len(data) != meta.get("bytes") or sha256_bytes(data) != meta.get("sha256"):
            return None
        return data

    def verify_part(self, index: int) -> bool:
        """True when part ``index`` and its checksum record exist and agree."""
        return self._verified_bytes(index) is not None

    def missing_parts(self) -> list[int]:
        """Indices of parts absent or failing their checksum (a corrupted part is reported and counted missing)."""
        missing = []
        for index in range(self.num_parts):
            if self.verify_part(index):
                continue
            if self._part_meta_path(index).exists() or self.part_path(index).exists():
                _logger.warning(
                    "part %d of %s is corrupted or incomplete; it will be synthesised again", index, self.path
                )
            missing.append(index)
        return missing

    def manifest(self) -> dict[str, Any] | None:
        """The manifest when the store is complete; None when it is missing, damaged (a warning names it: the
        next synthesis run writes it again) or says incomplete."""
        manifest = _read_json_object(self.manifest_path)
        if manifest is None and self.manifest_path.exists():
            _logger.warning("the manifest %s is damaged; it will be written again", self.manifest_path)
        return manifest if manifest is not None and manifest.get("complete") is True else None

    def is_complete(self) -> bool:
        manifest = self.manifest()
        return manifest is not None and manifest.get("num_parts") == self.num_parts

    def read_part(self, index: int) -> PartData:
        """Read one part, checking its sha256 against the record written with it."""
        data = self._verified_bytes(index)
        if data is None:
            raise StoreError(
                f"part {index} of {self.path} is missing or fails its checksum (corrupted or truncated); run "
                "synthesis again with the same config: only that part is made again"
            )
        tensors = st_load(data)
        return PartData(images=tensors["images"], targets=tensors["targets"], losses=tensors["losses"])

    def load(self) -> PartData:
        """All parts concatenated in part order; the store must be complete."""
        if not self.is_complete():
            raise StoreError(f"the store at {self.path} is not complete; synthesise it first (`zskd synthesize`)")
        parts = [self.read_part(i) for i in range(self.num_parts)]
        return PartData(
            images=torch.cat([p.images for p in parts]),
            targets=torch.cat([p.targets for p in parts]),
            losses=torch.cat([p.losses for p in parts]),
        )
