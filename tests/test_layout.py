"""The package's layout rules, read from the source with `ast` (nothing is imported):
only cnncli/cli/ imports typer/rich/click, no module imports another's private names, no
import circles among cnncli modules, and no module over MAX_LINES lines."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400
CLI_ONLY = ("typer", "rich", "click")


@dataclass
class Package:
    """Modules by dotted name: their source and whether each is a package (__init__)."""

    sources: dict[str, str]
    packages: set[str] = field(default_factory=set)
    files: dict[str, str] = field(default_factory=dict)  # name -> path shown in messages

    @classmethod
    def read(cls, folder: Path) -> Package:
        pkg = cls({})
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder.parent).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            if parts[-1] == "__init__":
                pkg.packages.add(name)
            pkg.sources[name] = path.read_text(encoding="utf-8")
            pkg.files[name] = path.relative_to(folder.parent).as_posix()
        return pkg

    def tree(self, name: str) -> ast.Module:
        return ast.parse(self.sources[name])

    def where(self, name: str, line: int) -> str:
        return f"{self.files.get(name, name)}:{line}"

    def absolute(self, name: str, node: ast.ImportFrom) -> str:
        """The module an ImportFrom reads from, relative imports resolved."""
        if not node.level:
            return node.module or ""
        base = name.split(".")
        base = base if name in self.packages else base[:-1]
        base = base[: len(base) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))

    def imports(self, name: str, node: ast.AST) -> list[tuple[str, str | None, int]]:
        """(module, imported name or None, line) for each import statement under `node`."""
        found = []
        for n in ast.walk(node):
            if isinstance(n, ast.Import):
                found += [(a.name, None, n.lineno) for a in n.names]
            elif isinstance(n, ast.ImportFrom):
                found += [(self.absolute(name, n), a.name, n.lineno) for a in n.names]
        return found


@pytest.fixture(scope="module")
def cnncli() -> Package:
    return Package.read(ROOT / "cnncli")


# ----------------------------------------------------------------------------- typer/rich
def cli_library_imports(pkg: Package) -> list[str]:
    found = {
        f"{pkg.where(name, line)} imports {module}"
        for name in pkg.sources
        if not (name == "cnncli.cli" or name.startswith("cnncli.cli."))
        for module, _, line in pkg.imports(name, pkg.tree(name))
        if module.split(".")[0] in CLI_ONLY
    }
    return sorted(found)


def test_only_the_cli_imports_typer_rich_or_click(cnncli):
    bad = cli_library_imports(cnncli)
    assert not bad, "move the terminal output to cnncli/cli/:\n" + "\n".join(bad)


def test_cli_import_scan_sees_lazy_imports():
    pkg = Package(
        {
            "cnncli.cli.x": "import typer\n",
            "cnncli.lib": "def f():\n    from rich.table import Table\n",
        }
    )
    assert cli_library_imports(pkg) == ["cnncli.lib:2 imports rich.table"]


# ----------------------------------------------------------------------------- private names
def is_private(attr: str) -> bool:
    return attr.startswith("_") and not (attr.startswith("__") and attr.endswith("__"))


def module_aliases(pkg: Package, name: str) -> dict[str, str]:
    """Local names bound to cnncli modules: `import cnncli.x as m`, `from cnncli import x`."""
    aliases = {}
    for n in ast.walk(pkg.tree(name)):
        if isinstance(n, ast.Import):
            for a in n.names:
                if a.name.split(".")[0] == "cnncli":
                    aliases[a.asname or "cnncli"] = a.name if a.asname else "cnncli"
        elif isinstance(n, ast.ImportFrom):
            source = pkg.absolute(name, n)
            for a in n.names:
                if f"{source}.{a.name}" in pkg.sources:
                    aliases[a.asname or a.name] = f"{source}.{a.name}"
    return aliases


def private_uses(pkg: Package, name: str) -> list[str]:
    """`from cnncli.x import _y` and `cnncli.x._y` / `x._y` (x a cnncli module) in `name`."""
    found = []
    for module, imported, line in pkg.imports(name, pkg.tree(name)):
        if module.startswith("cnncli") and module != name and imported and is_private(imported):
            found.append(f"{pkg.where(name, line)}: from {module} import {imported}")
    aliases = module_aliases(pkg, name)
    for n in ast.walk(pkg.tree(name)):
        if not isinstance(n, ast.Attribute):
            continue
        chain, node = [n.attr], n.value
        while isinstance(node, ast.Attribute):
            chain.insert(0, node.attr)
            node = node.value
        if not isinstance(node, ast.Name) or node.id not in aliases:
            continue
        module = aliases[node.id]
        for attr in chain:  # down through submodules to the first name that is not one
            if f"{module}.{attr}" in pkg.sources:
                module = f"{module}.{attr}"
                continue
            if is_private(attr) and module != name:
                found.append(f"{pkg.where(name, n.lineno)}: {module}.{attr}")
            break
    return sorted(set(found))


def test_no_module_uses_another_modules_private_names(cnncli):
    bad = [use for name in cnncli.sources for use in private_uses(cnncli, name)]
    assert not bad, "make these public or move them to their user:\n" + "\n".join(bad)


def test_private_name_scan_finds_imports_and_attributes():
    pkg = Package(
        {
            "cnncli": "__version__ = '1'\n",
            "cnncli.a": "def _x(): pass\ndef y(): return _x()\n",
            "cnncli.b": (
                "from cnncli import __version__\n"
                "from cnncli.a import _x, y\n"
                "import cnncli.a\n"
                "import cnncli.a as m\n"
                "def f(obj):\n"
                "    return cnncli.a._x, m._x, obj._private, m.y, y._cache\n"
            ),
        },
        packages={"cnncli"},
    )
    assert private_uses(pkg, "cnncli.b") == [
        "cnncli.b:2: from cnncli.a import _x",
        "cnncli.b:6: cnncli.a._x",
    ]
    assert private_uses(pkg, "cnncli.a") == []


# ----------------------------------------------------------------------------- circles
def module_level_imports(pkg: Package, name: str) -> set[str]:
    """cnncli modules that importing `name` imports at once (module-level statements, also
    inside try/if/with at the top; `if TYPE_CHECKING:` blocks are left out)."""
    targets = set()
    stack = list(pkg.tree(name).body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack += node.orelse
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.ExceptHandler)):
            for part in ("body", "orelse", "finalbody", "handlers"):
                stack += getattr(node, part, [])
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for module, imported, _ in pkg.imports(name, node):
                if imported and f"{module}.{imported}" in pkg.sources:
                    targets.add(f"{module}.{imported}")
                elif module in pkg.sources:
                    targets.add(module)
    targets.discard(name)
    return targets


def circles(pkg: Package, edges=None) -> list[list[str]]:
    """Groups of modules that import each other (Tarjan's SCCs of size > 1): at module level,
    or through `edges(pkg, name)`."""
    graph = {name: (edges or module_level_imports)(pkg, name) for name in pkg.sources}
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while component[-1:] != [v]:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circles(cnncli):
    found = circles(cnncli)
    assert not found, "import circles (module-level imports):\n" + "\n".join(
        " <-> ".join(c) for c in found
    )


def test_circle_scan_finds_module_level_circles_only():
    pkg = Package(
        {
            "cnncli.a": "from cnncli.b import f\n",
            "cnncli.b": "try:\n    import cnncli.c\nexcept ImportError:\n    pass\n",
            "cnncli.c": "from cnncli import a\n",
            "cnncli.d": "import cnncli.a\n",  # into the circle, not part of it
            "cnncli.e": "def g():\n    from cnncli.d import x\n",  # lazy: not an edge
        }
    )
    pkg.sources["cnncli"] = ""
    pkg.packages.add("cnncli")
    assert circles(pkg) == [["cnncli.a", "cnncli.b", "cnncli.c"]]
    pkg.sources["cnncli.c"] = "def h():\n    from cnncli import a\n"
    assert circles(pkg) == []


def all_imports(pkg: Package, name: str) -> set[str]:
    """cnncli modules `name` imports anywhere: module level and inside functions (a lazy
    import still ties the two modules together)."""
    targets = set()
    for module, imported, _ in pkg.imports(name, pkg.tree(name)):
        if imported and f"{module}.{imported}" in pkg.sources:
            targets.add(f"{module}.{imported}")
        elif module in pkg.sources:
            targets.add(module)
    targets.discard(name)
    return targets


def test_no_import_circles_counting_imports_inside_functions(cnncli):
    found = circles(cnncli, all_imports)
    assert not found, "import circles (imports inside functions too):\n" + "\n".join(
        " <-> ".join(c) for c in found
    )


# ----------------------------------------------------------------------------- layers
# The layers, lowest first (DESIGN.md, docs/architecture.md): a module imports only from its
# own layer or below, imports inside functions included. A module not named here is in the
# layer of its package.
LAYERS: list[tuple[str, ...]] = [
    ("cnncli", "cnncli.errors", "cnncli.notices", "cnncli.progress"),
    ("cnncli.atomic", "cnncli.claims", "cnncli.safe_files", "cnncli.images"),
    ("cnncli.drawing", "cnncli.fonts"),
    ("cnncli.models",),
    ("cnncli.datasets", "cnncli.filters"),
    ("cnncli.training",),
    ("cnncli.inference",),
    ("cnncli.export", "cnncli.runs", "cnncli.check", "cnncli.tune", "cnncli.demo"),
    ("cnncli.cli", "cnncli.__main__"),
]


def layer_of(name: str) -> int:
    best, depth = None, -1
    for level, names in enumerate(LAYERS):
        for prefix in names:
            if (name == prefix or name.startswith(prefix + ".")) and prefix.count(".") > depth:
                best, depth = level, prefix.count(".")
    assert best is not None, f"{name} is in no layer: add it to LAYERS"
    return best


def upward_imports(pkg: Package) -> list[str]:
    found = set()
    for name in pkg.sources:
        mine = layer_of(name)
        for module, imported, line in pkg.imports(name, pkg.tree(name)):
            target = f"{module}.{imported}" if f"{module}.{imported}" in pkg.sources else module
            if target.split(".")[0] != "cnncli" or target == name:
                continue
            if layer_of(target) > mine:
                found.add(
                    f"{pkg.where(name, line)} imports {target} (layer {layer_of(target) + 1}"
                    f" above its own {mine + 1})"
                )
    return sorted(found)


def test_no_module_imports_from_a_higher_layer(cnncli):
    found = upward_imports(cnncli)
    assert not found, "imports against the layers:\n" + "\n".join(found)


def test_layer_scan_finds_lazy_upward_imports():
    pkg = Package(
        {
            "cnncli": "",
            "cnncli.drawing.plots": "def f():\n    from cnncli.training.rundir import x\n",
            "cnncli.training.rundir": "from cnncli.drawing import plots\n",  # down: fine
        },
        packages={"cnncli"},
    )
    assert upward_imports(pkg) == [
        "cnncli.drawing.plots:2 imports cnncli.training.rundir (layer 6 above its own 3)"
    ]


# ----------------------------------------------------------------------------- sizes
def test_no_module_over_the_size_limit(cnncli):
    sizes = {name: len(text.splitlines()) for name, text in cnncli.sources.items()}
    big = [f"{cnncli.where(n, k)}: {k} lines" for n, k in sorted(sizes.items()) if k > MAX_LINES]
    assert not big, f"modules over {MAX_LINES} lines (split them):\n" + "\n".join(big)


# ------------------------------------------------------------------------------ annotated
def unannotated_functions(pkg: Package) -> list[str]:
    """Public module-level functions (what other modules and tests call) without a return
    annotation or with a positional parameter left bare (*args and **kwargs may be): mypy
    checks the body of an annotated function only, and a bare parameter is Any to it."""
    found = []
    for name in pkg.sources:
        for node in pkg.tree(name).body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                args = node.args.posonlyargs + node.args.args
                bare = [a.arg for a in args if a.annotation is None]
                if node.returns is None:
                    found.append(f"{pkg.where(name, node.lineno)}: {node.name}")
                elif bare:
                    found.append(f"{pkg.where(name, node.lineno)}: {node.name} ({', '.join(bare)})")
    return found


def test_public_functions_are_annotated(cnncli):
    found = unannotated_functions(cnncli)
    assert not found, "annotate these public functions:\n" + "\n".join(found)


def test_annotation_scan_finds_a_bare_function(tmp_path):
    pkg_dir = tmp_path / "cnncli"
    pkg_dir.mkdir()
    (pkg_dir / "__init__.py").write_text("")
    (pkg_dir / "a.py").write_text(
        "def typed(x: int) -> int:\n    return x\n\n"
        "def no_return(x: int):\n    return x\n\n"
        "def bare_arg(x, y: int, z=0) -> int:\n    return x\n\n"
        "def rest(x: int, *args, **kwargs) -> int:\n    return x\n\n"
        "def _private(x):\n    return x\n"
    )
    found = unannotated_functions(Package.read(pkg_dir))
    assert [f.split(": ")[-1] for f in found] == ["no_return", "bare_arg (x, z)"]
