"""Versioned diagnostic checkpoints: every retraining is a new version; rollback restores the previous one.

A run folder (``runs/diagnostics/<chemistry>-<kind>``) holds::

    versions/v001/diagnostic.pt     checkpoint (model, normaliser, threshold, metrics in meta)
    versions/v001/metrics.json      its threshold and metrics, readable without torch
    versions/v002/...
    registry.json                   {"current": "v002", "active": ["v001", "v002"]}

``active`` is the stack of versions in force, newest last; :meth:`VersionRegistry.rollback`
pops the current one off it (the files stay on disk, so nothing is lost) and the one below
becomes current again, with its own checkpoint *and* threshold. Publishing after a rollback
takes the next unused number: versions are never overwritten.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from surrogates.common.checkpoints import write_checkpoint
from surrogates.common.files import atomic_write_text

_VERSION = re.compile(r"^v(\d{3,})$")


class VersionRegistry:
    """The versions of one diagnostic in run folder ``root``."""

    CHECKPOINT = "diagnostic.pt"

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @property
    def _index(self) -> Path:
        return self.root / "registry.json"

    def _read(self) -> dict:
        if not self._index.exists():
            return {"current": None, "active": []}
        return json.loads(self._index.read_text())

    def versions(self) -> list[str]:
        """Every version on disk, oldest first."""
        d = self.root / "versions"
        if not d.exists():
            return []
        return sorted((p.name for p in d.iterdir() if _VERSION.match(p.name) and (p / self.CHECKPOINT).exists()),
                      key=lambda v: int(v[1:]))

    def current(self) -> str | None:
        return self._read()["current"]

    def active(self) -> list[str]:
        """Versions in force, oldest first (the last is current)."""
        return list(self._read()["active"])

    def path(self, version: str | None = None) -> Path:
        """Checkpoint of ``version`` (default: the current one)."""
        v = version or self.current()
        if v is None:
            raise FileNotFoundError(f"{self.root} has no published diagnostic version yet; train one with "
                                    "experiments/train_diagnostics.py")
        p = self.root / "versions" / v / self.CHECKPOINT
        if not p.exists():
            raise FileNotFoundError(f"{self.root} has no version {v}; versions: {', '.join(self.versions()) or 'none'}")
        return p

    def metrics(self, version: str | None = None) -> dict:
        return json.loads((self.path(version).parent / "metrics.json").read_text())

    def next_version(self) -> str:
        vs = self.versions()
        n = int(vs[-1][1:]) + 1 if vs else 1
        return f"v{n:03d}"

    def publish(self, blob: dict, metrics: dict) -> str:
        """Write ``blob`` (a checkpoint dict, :func:`surrogates.diagnostics.diagnostic.make_blob`) as the next
        version (its ``meta["version"]`` set) and make it current."""
        version = self.next_version()
        vdir = self.root / "versions" / version
        tmp_dir = self.root / "versions" / f".{version}.tmp-{os.getpid()}"
        if tmp_dir.exists():
            shutil.rmtree(tmp_dir)
        tmp_dir.mkdir(parents=True)
        blob = dict(blob)
        blob["meta"] = {**blob.get("meta", {}), "version": version}
        write_checkpoint(blob, tmp_dir / self.CHECKPOINT)
        (tmp_dir / "metrics.json").write_text(json.dumps({"version": version, "threshold": blob["threshold"],
                                                          **metrics}, indent=2))
        os.replace(tmp_dir, vdir)  # the version appears whole or not at all
        state = self._read()
        state["active"] = [*state["active"], version]
        state["current"] = version
        atomic_write_text(self._index, json.dumps(state, indent=2))
        return version

    def rollback(self) -> str:
        """Make the previous active version current again; returns it. The rolled-back files stay on disk."""
        state = self._read()
        if len(state["active"]) < 2:
            raise ValueError(f"nothing to roll back to in {self.root}: active versions {state['active'] or 'none'}")
        dropped = state["active"].pop()
        state["current"] = state["active"][-1]
        state.setdefault("rolled_back", []).append(dropped)
        atomic_write_text(self._index, json.dumps(state, indent=2))
        return state["current"]
