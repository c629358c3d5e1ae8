"""Atomic file writes: a file on disk is either the old one or the whole new one, never half written.

Every writer of shards, manifests, checkpoints and registries goes through :func:`atomic_path`,
so a job killed mid-write leaves nothing a reader could mistake for a result.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on error remove it.

    >>> with atomic_path("out/shard-00000.h5") as tmp:
    ...     write_everything_to(tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def safe_name(name: str, keep: str = "-.") -> str:
    """``name`` as a file name: letters, digits and ``keep`` as they are, anything else ``_`` (none at either end)."""
    return "".join(c if c.isalnum() or c in keep else "_" for c in name).strip("_")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_torch_save(obj, path: str | Path) -> None:
    """``torch.save(obj, path)`` atomically."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
