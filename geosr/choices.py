"""Option values shared by the library and its faces, importable without torch (the CLI
parses arguments before it loads anything heavy)."""

from __future__ import annotations

#: Forward-pass precisions: auto (fp16 on CUDA for 8-bit outputs, else fp32), or forced.
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
