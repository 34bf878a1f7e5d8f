"""Output paths checked before any work starts, so a run never ends by failing to write what it made."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["check_output_file", "check_output_folder"]


def _check_writable(target: Path, what: str) -> None:
    """The nearest existing folder at or above ``target`` must be a folder we can create files in (probed: a file
    created and removed, since permission bits say nothing for root)."""
    folder = target
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"{what} {str(target)!r} lies under {str(folder)!r}, which is a file; choose another path")
    probe = folder / f".zskd-write-probe-{os.getpid()}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()
    except OSError as exc:
        raise ValueError(
            f"{what} {str(target)!r} cannot be written ({exc.strerror or exc} in {str(folder)!r}); choose a writable "
            "folder or fix its permissions"
        ) from None


def check_output_file(path: str | os.PathLike, what: str) -> Path:
    """Fail before any work, not after it: ``path`` must be a file that can be written (not a folder, not under a
    file, in a writable folder). Nothing is left behind; an existing file is not changed."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is a folder; give a file path inside it instead")
    if not path.exists():
        _check_writable(path.parent, what)
        return path
    try:
        os.close(os.open(path, os.O_WRONLY))  # opened for writing, not truncated
    except OSError as exc:
        raise ValueError(f"{what} {str(path)!r} cannot be written ({exc.strerror or exc})") from None
    return path


def check_output_folder(path: str | os.PathLike, what: str) -> Path:
    """Like :func:`check_output_file` for a folder that outputs go into (made when missing)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is a file, not a folder; choose another path")
    _check_writable(path, what)
    return path
