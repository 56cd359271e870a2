"""Writing files so that a crash never leaves half of one: write beside it, then rename over it."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` in one step: readers see the old file or the new one, never a torn one.
    The file gets the permissions a plain `open` would give it (0666 less the umask), not mkstemp's 0600."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    """Replace `path` with `text` (UTF-8) in one step, as `write_bytes_atomic` does."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_jsonl_atomic(path: Path, rows: list[dict]) -> None:
    """Replace `path` with one JSON object per line (UTF-8, not ASCII-escaped), in one step."""
    write_text_atomic(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
