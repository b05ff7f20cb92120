"""The project's rooms (top-level packages) and who imports whom, measured from the source, not from the docs.

`python -m irlvla.layout` prints the rooms with their line counts and shares, the room-to-room imports (eager:
at module level; lazy: inside a function, e.g. an optional dependency or a heavy model loaded on demand), and any
import cycle between modules. `docs/architecture.md` is drawn from this output and a test keeps the rules
(`agent` imports no other room, no room over 30 % of the lines, no module-level cycle) true.
"""

from __future__ import annotations

import argparse
import ast
import json
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the project's importable rooms, ground floor first (the order of docs/architecture.md)
ROOMS: tuple[str, ...] = (
    "agent",
    "sim",
    "bench2drive_eval",
    "navsim_eval",
    "team_code",
    "navsim_agent",
    "training",
    "viz",
    "irlvla",
)
#: the largest share of the lines one room may hold (../shared/specs/architecture.md)
MAX_ROOM_SHARE = 0.30
#: which rooms each room may import (../shared/specs/architecture.md). `irlvla` holds the shared ground-floor helpers
#: (`atomic`, `configload`, this module) that any room may use, and the CLI, which loads each room's `cli` module by
#: name at run time.
ALLOWED: dict[str, frozenset[str]] = {
    "agent": frozenset({"irlvla"}),
    "sim": frozenset({"agent", "bench2drive_eval", "irlvla"}),
    "bench2drive_eval": frozenset({"irlvla"}),
    "navsim_eval": frozenset({"agent", "sim", "irlvla"}),
    "team_code": frozenset({"agent", "bench2drive_eval", "viz", "irlvla"}),  # viz: the HUD, opened on request
    "navsim_agent": frozenset({"agent", "navsim_eval", "sim", "irlvla"}),
    "training": frozenset({"agent", "sim", "navsim_eval", "irlvla"}),
    "viz": frozenset({"agent", "sim", "bench2drive_eval", "irlvla"}),  # bench2drive_eval: the demo metrics
    "irlvla": frozenset(),
}


@dataclass
class Layout:
    lines: dict[str, int] = field(default_factory=dict)  # room -> source lines (as `wc -l` counts them)
    eager: dict[str, set[str]] = field(default_factory=dict)  # room -> rooms imported at module level
    lazy: dict[str, set[str]] = field(default_factory=dict)  # room -> rooms imported only inside functions
    module_edges: dict[str, set[str]] = field(default_factory=dict)  # module -> modules imported at module level

    @property
    def total(self) -> int:
        return sum(self.lines.values())

    def share(self, room: str) -> float:
        return self.lines[room] / self.total if self.total else 0.0

    def violations(self) -> list[str]:
        """Room imports (eager or lazy) that `ALLOWED` does not permit, as "room -> room" strings."""
        return [
            f"{room} -> {other}"
            for room in self.lines
            for other in sorted(self.eager[room] | self.lazy[room])
            if other not in ALLOWED.get(room, frozenset())
        ]

    def cycles(self) -> list[list[str]]:
        """Strongly connected groups of more than one module in the module-level import graph (Tarjan)."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        out: list[list[str]] = []

        def visit(v: str) -> None:
            index[v] = low[v] = len(index)
            stack.append(v)
            on_stack.add(v)
            for w in self.module_edges.get(v, ()):
                if w not in index:
                    visit(w)
                    low[v] = min(low[v], low[w])
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                group = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    group.append(w)
                    if w == v:
                        break
                if len(group) > 1:
                    out.append(sorted(group))

        for v in sorted(self.module_edges):
            if v not in index:
                visit(v)
        return out


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(tree: ast.Module, module: str, is_package: bool, modules: set[str]) -> tuple[set[str], set[str]]:
    """(module-level, function-level) modules imported by one module. Imports under `if TYPE_CHECKING:` count as
    module-level: a type-only dependency is still a dependency (it is how import circles hide).

    `from pkg import sub` counts as importing `pkg.sub` when that is a module, else `pkg` (the name is defined there).
    """
    eager: set[str] = set()
    lazy: set[str] = set()

    def resolve(node: ast.ImportFrom) -> set[str]:
        base = node.module or ""
        if node.level:
            pkg = module.split(".") if is_package else module.split(".")[:-1]
            pkg = pkg[: len(pkg) - (node.level - 1)]
            base = ".".join([*pkg, base] if base else pkg)
        return {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}

    def walk(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            target = lazy if in_function else eager
            if isinstance(child, ast.Import):
                target.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                target.update(resolve(child))
            walk(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    walk(tree, False)
    return eager, lazy


def measure(root: Path = ROOT, rooms: tuple[str, ...] = ROOMS) -> Layout:
    """Lines per room and the import graph of every `.py` file under the rooms (tests and scripts excluded)."""
    layout = Layout()
    files = {room: sorted((root / room).rglob("*.py")) for room in rooms if (root / room).is_dir()}
    modules = {_module_name(p, root) for ps in files.values() for p in ps}
    for room, paths in files.items():
        layout.lines[room] = 0
        layout.eager[room], layout.lazy[room] = set(), set()
        for path in paths:
            text = path.read_text(encoding="utf-8")
            layout.lines[room] += len(text.splitlines())
            module = _module_name(path, root)
            eager, lazy = _imports(ast.parse(text, str(path)), module, path.name == "__init__.py", modules)
            layout.module_edges[module] = {n for n in eager if n in modules} - {module}
            for names, rooms_seen in ((eager, layout.eager[room]), (lazy, layout.lazy[room])):
                rooms_seen.update(n.split(".")[0] for n in names if n.split(".")[0] in files)
            layout.eager[room].discard(room)
            layout.lazy[room] -= layout.eager[room] | {room}
    return layout


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    args = ap.parse_args(argv)
    lay = measure()
    if args.json:
        print(
            json.dumps(
                {
                    "lines": lay.lines,
                    "total": lay.total,
                    "eager": {r: sorted(v) for r, v in lay.eager.items()},
                    "lazy": {r: sorted(v) for r, v in lay.lazy.items()},
                    "cycles": lay.cycles(),
                    "violations": lay.violations(),
                },
                indent=2,
            )
        )
        return 0
    print(f"{'room':<18}{'lines':>7}{'share':>8}  imports (lazy in brackets)")
    for room in lay.lines:
        lazy = f" [{', '.join(sorted(lay.lazy[room]))}]" if lay.lazy[room] else ""
        print(f"{room:<18}{lay.lines[room]:>7}{lay.share(room):>8.1%}  {', '.join(sorted(lay.eager[room]))}{lazy}")
    print(f"{'total':<18}{lay.total:>7}")
    cycles = lay.cycles()
    print("module import cycles:", "none" if not cycles else "; ".join(" <-> ".join(c) for c in cycles))
    print("imports the rules do not allow:", ", ".join(lay.violations()) or "none")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
