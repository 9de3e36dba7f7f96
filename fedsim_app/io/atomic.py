"""Atomic file writes: write a temporary sibling, then ``os.replace`` it into place.

An interrupted run therefore leaves either the old file or the new one, never half a
file. Temporary names start with a dot so dataset scanners skip them. This is FedSim's one
way of writing a file (volumes, records, meshes, previews, checkpoints, caches).

Examples
--------
>>> import torch                                                       # doctest: +SKIP
>>> write_atomic("run/ckpt.pt", lambda tmp: torch.save(state, tmp))    # doctest: +SKIP
>>> write_text_atomic("run/notes.txt", "done\n")                       # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from fedsim_app.io.errors import UnwritableError


def temp_sibling(path: Path) -> Path:
    """A hidden temporary name next to ``path`` that keeps its extension (nibabel needs it)."""
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix
    return path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")


_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.tmp(\.[A-Za-z0-9.]+)?$")


def remove_stale_temps(folder: str | Path, *, recursive: bool = False) -> list[Path]:
    """Delete the temporary files of :func:`temp_sibling` that a killed process left in
    ``folder`` (those of a live process stay); returns what was deleted.

    A ``kill -9`` mid-write skips the cleanup of :func:`atomic_path`; a resumed run calls
    this so that the stray file (its name ends like the data's, ``.nii.gz``) cannot be
    taken for data by a tool that scans the folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in folder.rglob(".*") if recursive else folder.glob(".*"):
        m = _TEMP_RE.match(p.name)
        if m and p.is_file() and not _alive(int(m.group("pid"))):
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success move it onto ``path``.

    Raises
    ------
    UnwritableError
        When the folder cannot be created or written.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UnwritableError(path.parent, f"cannot create the folder ({exc.strerror})",
                              "choose a folder you can write to") from exc
    tmp = temp_sibling(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except PermissionError as exc:
        raise UnwritableError(path.parent, "the folder is not writable",
                              "choose a folder you can write to or fix its permissions") from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` and rename ``tmp`` onto ``path``; returns ``path``."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8), atomically."""
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data``, atomically."""
    return write_atomic(path, lambda tmp: tmp.write_bytes(data))


def write_json_atomic(path: str | Path, obj) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def check_writable(folder: str | Path) -> Path:
    """Create ``folder`` if needed and prove a file can be written there.

    Raises
    ------
    UnwritableError
        With the folder named, when it cannot be created or written.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".fedsim-write-test.{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UnwritableError(folder, f"cannot write to the output folder ({exc.strerror})",
                              "choose a folder you can write to or fix its permissions") from exc
    return folder
