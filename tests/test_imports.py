"""No import cycles: every module imports alone in a fresh interpreter, and the package's
module-level import graph (read with ast) has no cycle."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pairdesign"
MODULES = sorted(
    ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for p in PACKAGE.rglob("*.py") if p.name != "__main__.py"
)


def _module_imports(path: Path, module: str) -> set[str]:
    """The pairdesign modules ``module`` imports at module level (not inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If):  # "if TYPE_CHECKING:" blocks are not imports at run time
            continue
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        found |= {n for n in names if n in MODULES}
    return found - {module}


def test_the_module_import_graph_has_no_cycle():
    graph = {m: _module_imports(ROOT / (m.replace(".", "/") + ("/__init__.py" if (ROOT / m.replace(".", "/")).is_dir() else ".py")), m)
             for m in MODULES}
    # a package imports its own submodules through __init__; those edges are not cycles of concern
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if m.startswith(n + ".") or n.startswith(m + "."):
                continue  # parent package <-> its submodule
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in MODULES:
        if m not in state:
            visit(m)


def test_every_module_imports_alone():
    """Each module imported first, with no pairdesign module loaded before it (one fresh
    interpreter; numpy and friends stay loaded between modules, pairdesign's are dropped)."""
    script = (
        "import importlib, sys\n"
        f"modules = {MODULES!r}\n"
        "failed = []\n"
        "for m in modules:\n"
        "    for name in [n for n in sys.modules if n == 'pairdesign' or n.startswith('pairdesign.')]:\n"
        "        del sys.modules[name]\n"
        "    try:\n"
        "        importlib.import_module(m)\n"
        "    except Exception as exc:\n"
        "        failed.append(f'{m}: {type(exc).__name__}: {exc}')\n"
        "print('\\n'.join(failed))\n"
        "sys.exit(1 if failed else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
