"""Raw ``.safetensors`` files: tensors plus a JSON header, written atomically and read back
with every kind of damage (a pickle, an empty, truncated or corrupt file) refused in one line.

Shared by model files (:mod:`geosr.checkpoint`) and training checkpoints
(:mod:`geosr.training.state`). Nothing here unpickles: safetensors stores raw tensors and a
JSON header, nothing executable.
"""

from __future__ import annotations

import json
import os
import pickletools
import struct
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from geosr.errors import CheckpointError
from geosr.fileutil import default_file_mode

_MAX_HEADER_BYTES = 100 * 1024 * 1024


def save_tensors(
    path: str | os.PathLike[str], tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, Any]
) -> Path:
    """Write tensors and JSON-serialisable metadata, via a temporary file and a rename."""
    path = Path(path)
    if not path.parent.is_dir():
        raise CheckpointError(f"cannot write {path}: folder {path.parent} does not exist")
    header = {key: json.dumps(value) for key, value in metadata.items()}
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(dict(tensors), tmp_name, metadata=header)
        os.chmod(tmp_name, default_file_mode())  # mkstemp makes 0600
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def load_tensors(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read tensors and metadata, turning every kind of damage into a CheckpointError."""
    path = Path(path)
    metadata = read_header(path)
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path} is corrupt or truncated ({_first_line(exc)}); re-download or re-export it"
        ) from None
    return tensors, metadata


def read_header(path: Path) -> dict[str, Any]:
    """Validate a safetensors file and return its decoded metadata dict.

    safetensors parses the file first; only a file it refuses is classified (pickle, empty,
    truncated, corrupt) for the message, because any byte, 0x80 included, can begin a valid
    safetensors header length.
    """
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except SafetensorError as exc:
        raise CheckpointError(_refusal(path, exc)) from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return {key: json.loads(value) for key, value in raw.items()}
    except (TypeError, json.JSONDecodeError):
        raise CheckpointError(f"{path} has corrupt metadata; re-download or re-export it") from None


def _refusal(path: Path, exc: BaseException) -> str:
    """The one-line reason a file safetensors refused is not a usable checkpoint."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            header_len = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
            framed = 0 < header_len <= min(size - 8, _MAX_HEADER_BYTES)
            header = f.read(header_len) if framed else b""
    except OSError as error:
        return f"cannot read {path}: {error.strerror or error}"
    if _is_torch_pickle(head):
        return (
            f"{path} is a PyTorch pickle (torch.save) file, which can run code when loaded; "
            "geosr reads only .safetensors. If you trust its source, convert it: load it in "
            "PyTorch, then save it with geosr.save_model"
        )
    if len(head) < 8:
        return f"{path} is empty or truncated; re-download or re-export it"
    if not framed:
        return (
            f"{path} is not a safetensors file, or it is truncated; pass a .safetensors model "
            "written by geosr.save_model"
        )
    try:
        if not isinstance(json.loads(header), dict):
            raise ValueError("the header is not a JSON object")
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return f"{path} has a corrupt safetensors header; re-download or re-export it"
    return f"{path} is corrupt or truncated ({_first_line(exc)}); re-download or re-export it"


def _is_torch_pickle(head: bytes) -> bool:
    """torch.save's zip archive, or a raw pickle stream: PROTO 2-5 and then a real opcode
    (a safetensors length 0x0280-0x0580 has a zero byte there instead)."""
    if head.startswith(b"PK\x03\x04"):
        return True
    return (
        len(head) >= 3
        and head[0] == 0x80
        and 2 <= head[1] <= 5
        and chr(head[2]) in pickletools.code2op
    )


def _compare_keys(
    expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor]
) -> tuple[list[str], list[str]]:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    return missing, unexpected


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _cpu_tensors(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def _check_weights(
    path: Path, expected: Mapping[str, torch.Tensor], found: Mapping[str, torch.Tensor]
) -> None:
    missing, unexpected = _compare_keys(expected, found)
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not match the architecture in its metadata "
            f"(missing {len(missing)}: {', '.join(missing[:3])}; unexpected {len(unexpected)}: "
            f"{', '.join(unexpected[:3])}); re-export the model with geosr.save_model"
        )
    for key, tensor in expected.items():
        if found[key].shape != tensor.shape:
            raise CheckpointError(
                f"{path}: weights do not match the architecture in its metadata ({key} is "
                f"{tuple(found[key].shape)}, expected {tuple(tensor.shape)}); "
                "re-export the model with geosr.save_model"
            )
