"""Markdown tables for reports (validation, diagnostics, policy evaluations): one writer for all."""

from __future__ import annotations

from typing import Callable


def markdown_table(rows: list, columns: list[tuple[str, Callable]]) -> str:
    """``rows`` as a markdown table: one column per ``(header, cell)``, ``cell(row)`` its text."""
    lines = ["| " + " | ".join(h for h, _ in columns) + " |", "|---" * len(columns) + "|"]
    lines += ["| " + " | ".join(str(cell(r)) for _, cell in columns) + " |" for r in rows]
    return "\n".join(lines)
