"""Writing files so that a crash never leaves half of one (write beside it, then rename over it), reading
back a saved model's or a checkpoint's files to find one that is torn, and telling a write that failed for want
of space (a full disk, a quota, `ulimit -f`) from other errors."""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from nlpcli import layout


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


# Reading back what a model folder or a checkpoint holds: a file torn by a full disk, a copy cut short or a
# bad sector is named, never trusted.
WEIGHT_FILES = (layout.SAFE_WEIGHTS, layout.WEIGHTS, f"{layout.SAFE_WEIGHTS}.index.json",
                f"{layout.WEIGHTS}.index.json")
MODEL_FILES = (layout.MODEL_CONFIG, "generation_config.json", layout.TOKENIZER_FILE, layout.TOKENIZER_CONFIG,
               "special_tokens_map.json")


def _torch_file(path: Path) -> None:
    """torch.load with weights_only; a file that needs more than weights (RNG states, training arguments) has
    its zip archive read back instead (every member against its CRC), so no pickle in it is run."""
    import pickle
    import zipfile

    import torch

    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Weights only load failed" not in str(err) or not zipfile.is_zipfile(path):
            raise
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
        if bad is not None:
            raise ValueError(f"its member {bad} does not match its checksum") from None


def unreadable(path: Path) -> str | None:
    """What is wrong with one file of a saved model or checkpoint, read back by its kind (JSON, safetensors,
    a torch file); None when it reads (files of other kinds are not looked into)."""
    name = path.name
    try:
        if path.stat().st_size == 0:
            return f"{path} is empty"
        if name.endswith(".json"):
            json.loads(path.read_text(encoding="utf-8"))
        elif name.endswith(".safetensors"):
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as weights:
                weights.keys()
        elif name.endswith((".pt", ".pth", ".bin", ".pkl")):
            _torch_file(path)
    except Exception as err:  # noqa: BLE001 - any failure to read it back is the answer
        reason = " ".join(str(err).split())[:160] or type(err).__name__
        return f"{path} does not read back ({reason})"
    return None


def checkpoint_problem(folder: Path) -> str | None:
    """The first file of a checkpoint folder that does not read back (every file is read), or its missing
    weights; None when the checkpoint is whole."""
    found = sorted(p for p in Path(folder).iterdir() if p.is_file())
    for path in found:
        problem = unreadable(path)
        if problem:
            return problem
    if not any((Path(folder) / name).is_file() for name in WEIGHT_FILES):
        return f"{folder} holds no weights file ({WEIGHT_FILES[0]})"
    return None


def model_folder_problem(folder: Path) -> str | None:
    """What is wrong with a saved model folder (its config, weights and tokenizer files read back); None when
    it is whole. Its other files (metrics, predictions, checkpoints) are not looked at."""
    folder = Path(folder)
    weights = [folder / name for name in WEIGHT_FILES if (folder / name).is_file()]
    if not weights:
        return f"{folder} holds no weights file ({WEIGHT_FILES[0]})"
    for index in [p for p in weights if p.name.endswith(".index.json")]:
        problem = unreadable(index)
        if problem:
            return problem
        shards = sorted(set(json.loads(index.read_text(encoding="utf-8")).get("weight_map", {}).values()))
        missing = [name for name in shards if not (folder / name).is_file()]
        if missing:
            return f"{folder} lacks {missing[0]}, a weights file {index.name} names"
        weights += [folder / name for name in shards]
    for path in [*(folder / name for name in MODEL_FILES), *weights]:
        problem = unreadable(path) if path.is_file() else None
        if problem:
            return problem
    return None


# A write that failed for want of space. Python ignores SIGXFSZ, so a write past `ulimit -f` fails with EFBIG
# instead of killing the process. safetensors says so in its message only ("File too large (os error 27)"),
# and torch's zip writer with neither errno nor reason ("unexpected pos ...", "basic_ios::clear: iostream error").
NO_SPACE = {errno.ENOSPC: "no space left on the device", errno.EFBIG: "the file size limit (ulimit -f) was reached",
            errno.EDQUOT: "the disk quota is exceeded"}
_SAID = {errno.ENOSPC: re.compile(r"No space left on device|os error 28\b"),
         errno.EFBIG: re.compile(r"File too large|os error 27\b"),
         errno.EDQUOT: re.compile(r"Disk quota exceeded|os error 122\b")}
_SHORT_WRITE = re.compile(r"unexpected pos \d+ vs \d+|basic_ios::clear: iostream error|\d+ requested and \d+ written")


def _file_size_limited() -> bool:
    try:
        import resource
    except ImportError:  # not a POSIX system: no `ulimit -f`
        return False
    return resource.getrlimit(resource.RLIMIT_FSIZE)[0] != resource.RLIM_INFINITY


def error_chain(err: BaseException) -> Iterator[BaseException]:
    """`err`, then the error it was raised from or while handling, and so on (each once)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def write_failure(err: BaseException) -> str | None:
    """Why a write failed when `err`, or an error it was raised from or while handling, says a disk is full, a
    quota is exceeded or a file size limit was reached ("no space left on the device", ...); None for other
    errors. A short write that gives no reason is put down to the file size limit when one is set, else to a
    full disk."""
    for current in error_chain(err):
        if isinstance(current, OSError) and current.errno in NO_SPACE:
            return NO_SPACE[current.errno]
        text = str(current)
        for code, said in _SAID.items():
            if said.search(text):
                return NO_SPACE[code]
        if _SHORT_WRITE.search(text):
            return NO_SPACE[errno.EFBIG] if _file_size_limited() else NO_SPACE[errno.ENOSPC]
    return None
