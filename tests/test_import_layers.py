"""Every import points down the layers (README's map): a package imports only from its own layer or below, and no
module imports itself back through others (lazy imports inside functions count alike)."""

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
    ("agents.charge",),  # one charge: its start, trace and record
    ("agents.control",),  # controllers: rules, the oracle, the tuned protocols
    ("agents.evaluation",),  # the yardstick: grid, reference table, scoring, report
    ("agents.ageing",),  # ground-truth degradation and its report
    ("agents.rl",),  # training, a run judged, the ablation: pipelines over everything below
    ("agents",),
    ("experiments", "benchmarks"),
]
PACKAGES = ("surrogates", "envs", "agents")


def _layer(module: str) -> int | None:
    for i, names in enumerate(LAYERS):
        if any(module == n or module.startswith(n + ".") for n in names):
            return i
    return None


def _module_name(rel: Path) -> str:
    parts = rel.with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):  # module level and inside functions alike
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            for a in node.names:  # `from pkg import submodule`
                yield f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names)


def _sources():
    for path in sorted(ROOT.glob("**/*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in ("tests", "build") or ".git" in rel.parts:
            continue
        yield rel, path


def test_every_import_points_down():
    upward = []
    for rel, path in _sources():
        own = _layer(_module_name(rel))
        if own is None:
            continue
        for module in _imports(path):
            target = _layer(module)
            if target is not None and target > own and not _module_name(rel).startswith(module):
                upward.append(f"{rel} imports {module}")
    assert not upward, "imports that point up the layers:\n" + "\n".join(upward)


def test_no_import_circle():
    modules = {_module_name(rel): path for rel, path in _sources() if rel.parts[0] in PACKAGES}
    graph = {m: sorted({t for t in _imports(p) if t in modules and t != m}) for m, p in modules.items()}
    done, stack, circles = set(), [], []

    def visit(m):
        if m in stack:
            circles.append(" -> ".join(stack[stack.index(m):] + [m]))
            return
        if m in done:
            return
        stack.append(m)
        for t in graph[m]:
            visit(t)
        stack.pop()
        done.add(m)

    for m in sorted(graph):
        visit(m)
    assert not circles, "import circles:\n" + "\n".join(circles)
