"""The import rules of DEVELOPERS.md, checked on the source: cli → engine → providers/base ← providers/*.

The engine talks only to the provider interface; a provider never reaches up into the engine, the CLI,
the config or another provider; only the CLI imports typer and tabulate.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "releasectl"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                found.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                found.add(node.module)
    return found


MODULES = {module_name(p): imports_of(p) for p in ROOT.rglob("*.py")}


def violations(prefix: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for module, imported in MODULES.items():
        if module == prefix or module.startswith(prefix + "."):
            for name in imported:
                if any(name == f or name.startswith(f + ".") for f in forbidden):
                    bad.append(f"{module} imports {name}")
    return sorted(bad)


RULES = [
    ("releasectl.engine", ("releasectl.cli", "releasectl.config", "releasectl.providers.local", "releasectl.providers.openstack",
                           "requests", "keyring", "subprocess", "typer", "tabulate", "yaml")),
    ("releasectl.providers.base", ("releasectl.engine", "releasectl.cli", "releasectl.config", "requests", "typer")),
    ("releasectl.providers.base_env", ("releasectl.engine", "releasectl.cli", "releasectl.config", "requests", "typer")),
    ("releasectl.providers.base_extra", ("releasectl.engine", "releasectl.cli", "releasectl.config", "requests", "typer")),
    ("releasectl.providers.local", ("releasectl.engine", "releasectl.cli", "releasectl.config", "releasectl.providers.openstack", "typer", "tabulate")),
    ("releasectl.providers.openstack", ("releasectl.engine", "releasectl.cli", "releasectl.config", "releasectl.providers.local", "typer", "tabulate")),
    ("releasectl.config", ("releasectl.cli", "releasectl.providers.local", "releasectl.providers.openstack", "typer", "requests")),
    ("releasectl.errors", ("releasectl",)),
    ("releasectl.loadgen", ("releasectl.engine", "releasectl.providers", "requests")),
    # the Python API sits under the CLI: it never parses arguments, renders tables or picks a provider itself
    ("releasectl.api", ("releasectl.cli.app", "releasectl.cli.views", "releasectl.providers.local",
                        "releasectl.providers.openstack", "requests", "typer", "tabulate")),
]


@pytest.mark.parametrize("prefix,forbidden", RULES, ids=[r[0] for r in RULES])
def test_imports_flow_one_way(prefix, forbidden):
    assert violations(prefix, forbidden) == []


def test_only_the_cli_and_demo_use_typer_and_tabulate():
    users = {m for m, imported in MODULES.items() if imported & {"typer", "tabulate"}}
    assert users <= {m for m in MODULES if m.startswith("releasectl.cli") or m == "releasectl.demo"}, users


def test_wait_depends_only_on_errors():
    assert {i for i in MODULES["releasectl.wait"] if i.startswith("releasectl")} <= {"releasectl.errors", "releasectl.logs"}


def test_every_package_is_listed_for_the_wheel():
    import tomllib

    listed = set(tomllib.loads((ROOT.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {module_name(p) for p in ROOT.rglob("__init__.py")}
    assert packages <= listed, packages - listed
