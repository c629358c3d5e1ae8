"""Checkpoints are data, not code: every checkpoint is written as plain types and read with ``weights_only=True``.

A checkpoint (a surrogate, a diagnostic, the life estimator, a training run's ``last.pt`` / ``best.pt``) is a
dict of plain types only: ``dict`` (and the ``OrderedDict`` of a ``state_dict``), ``list``, ``tuple``, ``str``,
``int``, ``float``, ``bool``, ``None`` and tensors. Objects (dataclasses, numpy arrays) are stored as such plain
values by their saver and rebuilt by their loader. So a checkpoint from a user's cell folder or from someone
else can be opened without running anything it carries: :func:`load_checkpoint` unpickles with
``torch.load(..., weights_only=True)``, which refuses any other global, and is what every loader calls.

* :func:`write_checkpoint` -- the one writer: :func:`plain` of the object, saved atomically.
* :func:`load_checkpoint` -- the one reader; a file that is not a checkpoint, is cut short or carries anything but
  plain data raises :class:`CheckpointError` naming the file and what to do.
* :func:`upgrade` -- turns a *trusted* checkpoint written before this policy (numpy scalars in its metadata, a
  numpy RNG state) into a plain one in place.
"""

from __future__ import annotations

import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path, PurePath

import numpy as np
import torch

UPGRADE_HINT = ("re-download or retrain it; if you trust its source and it is a checkpoint written by an older "
                "cellgym, upgrade it once with `from surrogates.common.checkpoints import upgrade; upgrade(path)`")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: not a checkpoint, cut short, carrying more than plain data (possibly code),
    or not fitting the request (architecture, kind, chemistry, ``dt``, format)."""


def plain(obj, arrays: bool = False, _where: str = "checkpoint"):
    """``obj`` with only the types :func:`load_checkpoint` accepts.

    numpy scalars become Python scalars, ``str`` subclasses (``np.str_``) ``str``, paths ``str``; dicts (an
    ``OrderedDict`` stays one), lists and tuples are converted item by item; tensors pass as they are.
    numpy arrays become nested lists only with ``arrays=True`` (for :func:`upgrade`): a saver states its
    arrays' form itself (``.tolist()`` or a tensor) and its loader rebuilds them. Anything else (a dataclass,
    an arbitrary object) raises ``TypeError`` naming where it sits: store its fields instead.
    """
    if obj is None or type(obj) in (bool, int, float, str) or isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, dict):
        out = OrderedDict() if isinstance(obj, OrderedDict) else {}
        for k, v in obj.items():
            key = plain(k, arrays, _where)
            out[key] = plain(v, arrays, f"{_where}[{key!r}]")
        if isinstance(getattr(obj, "_metadata", None), dict):  # a state_dict's module versions (load_state_dict reads them)
            out._metadata = plain(obj._metadata, arrays, f"{_where}._metadata")
        return out
    if isinstance(obj, (list, tuple)):
        items = [plain(v, arrays, f"{_where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    if isinstance(obj, (np.generic, bool, int, float, str)):  # numpy scalars and subclasses of the builtins
        value = obj.item() if isinstance(obj, np.generic) else obj
        for t in (bool, int, float, str):
            if isinstance(value, t):
                return t(value)
    if isinstance(obj, PurePath):
        return str(obj)
    if arrays and isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{_where} is a {type(obj).__module__}.{type(obj).__qualname__}, not a plain type "
                    "(dict, list, tuple, str, int, float, bool, None, tensor); store its fields instead")


def write_checkpoint(obj, path: str | Path) -> Path:
    """Save :func:`plain` of ``obj`` to ``path`` atomically (a temporary file beside it, then a rename)."""
    from surrogates.common.files import atomic_torch_save

    atomic_torch_save(plain(obj), path)
    return Path(path)


def load_checkpoint(path: str | Path, map_location="cpu"):
    """The checkpoint at ``path``, unpickled with ``weights_only=True``: plain types and tensors only.

    Raises ``FileNotFoundError`` when there is no file, and :class:`CheckpointError` naming the file when it is
    not a torch checkpoint, is truncated, or holds anything but plain data (a crafted pickle is refused before
    any of it runs).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no checkpoint at {p}")
    try:
        return torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        if "Weights only load failed" in text or "Unsupported global" in text or "weights_only" in text:
            what = _refused_global(text)
            raise CheckpointError(f"{p} holds more than tensors and plain data{what} and was not loaded, since "
                                  f"unpickling it could run code; {UPGRADE_HINT}") from None
        raise CheckpointError(f"{p} is not a readable checkpoint ({_first_line(err)}); {UPGRADE_HINT}") from None
    except (RuntimeError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
            zipfile.BadZipFile, UnicodeDecodeError, OverflowError, MemoryError) as err:
        raise CheckpointError(f"{p} is not a checkpoint or is truncated ({_first_line(err)}); "
                              "re-download or retrain it") from None
    except OSError as err:  # a zip archive cut short reads as EINVAL; a missing or unreadable file is not ours to rename
        if isinstance(err, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise
        raise CheckpointError(f"{p} is not a checkpoint or is truncated ({_first_line(err)}); "
                              "re-download or retrain it") from None


def _first_line(err: BaseException) -> str:
    lines = [s for s in str(err).splitlines() if s.strip()]
    return f"{type(err).__name__}: {lines[0][:200]}" if lines else type(err).__name__


def _refused_global(text: str) -> str:
    for line in text.splitlines():
        if "GLOBAL" in line:
            words = line.split()
            i = words.index("GLOBAL") if "GLOBAL" in words else -1
            if 0 <= i < len(words) - 1:
                return f" (it needs {words[i + 1]})"
    return ""


def upgrade(path: str | Path, out: str | Path | None = None) -> Path:
    """Rewrite a checkpoint of an older cellgym as plain data, so :func:`load_checkpoint` reads it.

    ONLY FOR A FILE YOU TRUST: this reads ``path`` with ``torch.load(..., weights_only=False)``, which runs
    whatever the file's pickle says. Use it on checkpoints you (or this project) wrote before checkpoints were
    plain data: numpy scalars and ``np.str_`` keys in metadata, numpy arrays, a numpy RNG state in a training
    run's ``last.pt``. Those become Python scalars, ``str`` and lists (:func:`plain` with ``arrays=True``); the
    weights are not touched. The result is written atomically to ``out`` (default: over ``path``) and read back
    with ``weights_only=True`` before this returns its path. A file that already loads as plain data is left as
    it is. Anything else it holds (a dataclass, a foreign object) raises ``TypeError``: such a checkpoint was not
    written by cellgym.

    >>> from surrogates.common.checkpoints import upgrade
    >>> upgrade("my-cells/mycell/surrogates/mycell-jepa.pt")
    """
    src = Path(path)
    dest = Path(out) if out is not None else src
    try:
        load_checkpoint(src)
        plain_already = True
    except CheckpointError:
        plain_already = False
    if plain_already:
        if dest != src:
            from surrogates.common.files import atomic_path
            import shutil

            with atomic_path(dest) as tmp:
                shutil.copyfile(src, tmp)
        return dest
    blob = torch.load(src, map_location="cpu", weights_only=False)  # trusted by the caller: see the docstring
    from surrogates.common.files import atomic_torch_save

    atomic_torch_save(plain(blob, arrays=True), dest)
    load_checkpoint(dest)  # proves it is plain now
    return dest


__all__ = ["CheckpointError", "UPGRADE_HINT", "plain", "write_checkpoint", "load_checkpoint", "upgrade"]
