"""The models folder, where converted models live, and the check of a converted copy against what it recorded.

The folder is ``$WORKBENCH_MODELS``, else the platform's cache folder + ``workbench/models`` (``~/.cache/workbench/
models`` on Linux); each converted model has a subfolder of its catalog name. The marker
(``workbench-pretrained.json``) is written last into a converted folder: what the model is, where it came from, and
the size and sha256 of every file (``files``). Sizes are checked whenever the model is used (a ``stat`` per file),
hashes when it is prepared; a copy converted before sizes were recorded is checked against its safetensors headers,
which give the exact length of the file.

>>> damage_of(Path("/no/such/folder"))
'its workbench-pretrained.json cannot be read'
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

MARKER = "workbench-pretrained.json"


def models_dir() -> Path:
    """``$WORKBENCH_MODELS``, else the platform's cache folder + ``workbench/models``."""
    if os.environ.get("WORKBENCH_MODELS"):
        return Path(os.environ["WORKBENCH_MODELS"]).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "workbench" / "models"


def local_dir(name: str) -> Path:
    """The folder a converted model lives in (it may not exist yet)."""
    return models_dir() / name


def is_converted(name: str) -> bool:
    return (local_dir(name) / MARKER).is_file()


def damage(name: str, *, hashes: bool = False) -> str | None:
    """Why the converted copy of ``name`` cannot be used as it is (None: it can); see :func:`damage_of`."""
    return damage_of(local_dir(name), hashes=hashes)


def models_dir_problem() -> str | None:
    """Why the models folder cannot hold a conversion, found cheaply (a file where a folder must be); None: fine."""
    folder = models_dir()
    for path in (folder, *folder.parents):
        if path.exists():
            return None if path.is_dir() else (f"the models folder {folder} ($WORKBENCH_MODELS) is not a folder: "
                                               f"{path} is a file; point WORKBENCH_MODELS at a folder")
    return None


def file_records(folder: Path) -> dict[str, dict]:
    """Size and sha256 of every file of a converted folder (its marker aside)."""
    return {p.name: {"size": p.stat().st_size, "sha256": _sha256(p)}
            for p in sorted(folder.iterdir()) if p.is_file() and p.name != MARKER}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def damage_of(folder: Path, *, hashes: bool = False) -> str | None:
    """Why a converted ``folder`` cannot be used as it is (None: it can): a file missing, or of another size than
    when it was converted, or with ``hashes`` another sha256. A copy converted before sizes were recorded is checked
    against its safetensors headers (a truncated or empty weights file)."""
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"its {MARKER} cannot be read"
    if not isinstance(marker, dict):
        return f"its {MARKER} is not a record of the conversion"
    files = marker.get("files")
    if files is None:
        return _headers_damage(folder)
    if not isinstance(files, dict) or not all(isinstance(r, dict) and isinstance(r.get("size"), int)
                                              and isinstance(r.get("sha256"), str) for r in files.values()):
        return f"its {MARKER} lists its files wrongly"
    for fname, record in files.items():
        try:
            size = (folder / fname).stat().st_size
        except OSError:
            return f"{fname} is missing"
        if size != record["size"]:
            return f"{fname} is {size:,} bytes, {record['size']:,} when converted"
        if hashes and _sha256(folder / fname) != record["sha256"]:
            return f"{fname} has changed since it was converted (another sha256)"
    return None


def _headers_damage(folder: Path) -> str | None:
    """A safetensors file starts with the length of its JSON header, which gives every tensor's end: the file must
    be exactly that long."""
    for path in sorted(folder.glob("*.safetensors")):
        try:
            size = path.stat().st_size
            with path.open("rb") as f:
                length = int.from_bytes(f.read(8), "little")
                if size < 8 or length > min(size - 8, 100 << 20):
                    return f"{path.name} is truncated ({size:,} bytes)"
                header = json.loads(f.read(length))
            end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
        except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
            return f"{path.name} has an unreadable header"
        if size != 8 + length + end:
            return f"{path.name} is {size:,} bytes, its header says {8 + length + end:,}"
    return None


def record_files(folder: Path, say: Callable[[str], None]) -> None:
    """Record sizes and hashes in a copy converted before they were recorded (it passed its header check)."""
    marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    if "files" in marker:
        return
    try:
        write_marker(folder, {**marker, "files": file_records(folder)})
    except OSError as err:
        say(f"could not record the sizes and hashes of {folder} ({err.strerror or err}); checked by headers only")
        return
    say(f"recorded the sizes and sha256 of the files in {folder}; they are checked from now on")


def write_marker(folder: Path, data: dict) -> None:
    tmp = folder / f".{MARKER}.{os.getpid()}"
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, folder / MARKER)
