"""Every import points down the layers (README's map): a package imports only from its own layer or below."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = [  # bottom first
    ("surrogates.common",),
    ("surrogates.physics",),
    ("surrogates.data",),
    ("surrogates.models",),
    ("surrogates.baselines", "surrogates.diagnostics"),
    ("surrogates.training", "surrogates.validation"),
    ("envs",),
    ("agents",),
    ("experiments", "benchmarks"),
]


def _layer(module: str) -> int | None:
    for i, names in enumerate(LAYERS):
        if any(module == n or module.startswith(n + ".") for n in names):
            return i
    return None


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):  # module level and inside functions alike
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names)


def test_every_import_points_down():
    upward = []
    for path in sorted(ROOT.glob("**/*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in ("tests", "build") or ".git" in rel.parts:
            continue
        own = _layer(".".join(rel.with_suffix("").parts))
        if own is None:
            continue
        for module in _imports(path):
            target = _layer(module)
            if target is not None and target > own:
                upward.append(f"{rel} imports {module}")
    assert not upward, "imports that point up the layers:\n" + "\n".join(upward)
