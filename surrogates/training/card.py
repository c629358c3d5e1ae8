"""The part every model card shares: how to reproduce the checkpoint, and its resolved config."""

from __future__ import annotations

import json


def reproduce_section(commands: list[str], config: dict) -> str:
    """Markdown: the shell ``commands`` that rebuild a checkpoint, then its ``config`` as JSON."""
    newline = "\n"
    return f"""Reproduce:

```bash
{newline.join(commands)}
```

Config:

```json
{json.dumps(config, indent=2)}
```
"""
