"""The registry of diagnostic kinds: name -> plug-in class (:class:`~surrogates.diagnostics.kind.DiagnosticKind`).

Adding a kind is adding its class (a module beside this one) and its entry here.
"""

from __future__ import annotations

from surrogates.diagnostics.degradation import Degradation
from surrogates.diagnostics.kind import DiagnosticKind
from surrogates.diagnostics.ood import OOD
from surrogates.diagnostics.plating import Plating

KIND_CLASSES: dict[str, type[DiagnosticKind]] = {cls.name: cls for cls in (Plating, OOD, Degradation)}
"""Kind name -> plug-in class."""


def diagnostic_kind(name: str) -> DiagnosticKind:
    """The plug-in of kind ``name``; a clear error for an unknown one."""
    try:
        return KIND_CLASSES[name]()
    except KeyError:
        raise ValueError(f"unknown diagnostic kind {name!r}; valid kinds are: {', '.join(KIND_CLASSES)}") from None


def kind_of(model) -> DiagnosticKind:
    """The plug-in whose network ``model`` is."""
    for cls in KIND_CLASSES.values():
        if cls().owns(model):
            return cls()
    raise ValueError(f"{type(model).__name__} is no diagnostic network; valid: "
                     + ", ".join(cls.model_class.__name__ for cls in KIND_CLASSES.values()))
