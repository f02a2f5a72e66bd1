"""The layers form a stack (issue 18): bridge/ (web, storage, helpdesk adapters) never
imports workers/ (the Celery side), and no two modules import each other."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bridge", "workers")


def modules() -> dict[str, Path]:
    """Module name -> file, for every module of the project's packages."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _running(tree: ast.AST) -> list[ast.AST]:
    """Every node of `tree` but those under `if TYPE_CHECKING:` (imports that never run)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for part in node.body for n in ast.walk(part)}
    return [n for n in ast.walk(tree) if id(n) not in skipped]


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports when it runs, at the top or inside functions."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in _running(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in known else base)
    return {m for m in out if m in known and m != name}


def graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports(name, path, known) for name, path in found.items()}


def test_bridge_never_imports_the_celery_side() -> None:
    wrong = {
        f"{name} -> {dep}"
        for name, deps in graph().items()
        if name.startswith("bridge")
        for dep in deps
        if dep.startswith("workers")
    }
    assert not wrong, sorted(wrong)


def test_no_two_modules_import_each_other() -> None:
    g = graph()
    pairs = {tuple(sorted((a, b))) for a, deps in g.items() for b in deps if a in g.get(b, set())}
    assert not pairs, sorted(pairs)


def test_the_checker_sees_imports_made_inside_functions() -> None:
    """The web imports the helpdesks lazily (bridge/app.py): a checker blind to that would
    pass anything."""
    assert "bridge.helpdesks" in graph()["bridge.app"]
    assert "bridge.publisher" in graph()["bridge.app"]


def test_the_old_adapter_paths_still_import_the_same_classes() -> None:
    """A third-party adapter written before issue 18 (`workers.adapters.base.Helpdesk`) and
    an entry point naming `workers.adapters.zendesk:ZendeskHelpdesk` keep working."""
    from workers.adapters.base import Helpdesk as OldHelpdesk
    from workers.adapters.zendesk import ZendeskHelpdesk as OldZendesk

    from bridge.helpdesks import adapter_class
    from bridge.helpdesks.base import Helpdesk
    from bridge.helpdesks.zendesk import ZendeskHelpdesk

    assert OldHelpdesk is Helpdesk and OldZendesk is ZendeskHelpdesk
    assert adapter_class("zendesk") is ZendeskHelpdesk
