"""Shared by every layer: channel names and units, provenance, command lines, atomic file writes, checkpoints as
plain data (:mod:`surrogates.common.checkpoints`: the one reader, ``weights_only=True``, and its error)."""
