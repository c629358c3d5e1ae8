"""Shared by every layer: channel names and units, provenance, command lines, atomic file writes."""
