"""The app/trainer boundary and the base install, checked on the source and a fresh interpreter.

`trainer/` never imports `app`; `app/` imports only `trainer.schema` (the worker, which turns a
round into trainer calls, aside); and the web app and its CLI import no module that only an
optional extra installs: `make demo` runs on the base install, where such an import is a crash
(pyarrow once was).
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "app" / "worker"


def imported_modules(path: Path) -> set[str]:
    """Every absolute module name an `import` or `from … import` in the file names."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _is_under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_trainer_never_imports_app() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(
            n for n in imported_modules(path) if _is_under(n, "app")
        )
        for path in (ROOT / "trainer").rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_app_imports_only_the_trainer_schema_outside_the_worker() -> None:
    offenders = {}
    for path in (ROOT / "app").rglob("*.py"):
        if path.is_relative_to(WORKER):
            continue
        names = {n for n in imported_modules(path) if _is_under(n, "trainer")}
        bad = sorted(n for n in names if not _is_under(n, "trainer.schema") and n != "trainer")
        # `from trainer import schema` names `trainer` and `trainer.schema`: both fine.
        if bad:
            offenders[str(path.relative_to(ROOT))] = bad
    assert offenders == {}


def _distribution_closure(requirements: list[str]) -> set[str]:
    """Normalised names of the distributions these requirements install, transitively."""
    names: set[str] = set()
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        # A dependency's own extras install more (sqlalchemy[asyncio] brings greenlet).
        extras = frozenset(req.extras)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        names.add(name)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue
        for raw in dist.requires or []:
            sub = Requirement(raw)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in {"", *extras}):
                todo.append(sub)
    return names


def modules_only_extras_install() -> set[str]:
    """Top-level modules of distributions that an extra installs and the base install does not."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = _distribution_closure(project["dependencies"])
    extras = _distribution_closure(
        [r for reqs in project["optional-dependencies"].values() for r in reqs]
    )
    extra_only = extras - base
    modules: set[str] = set()
    for module, dists in metadata.packages_distributions().items():
        if {re.sub(r"[-_.]+", "-", d).lower() for d in dists} <= extra_only:
            modules.add(module)
    return modules


# Run in a fresh interpreter where the extras' modules cannot be imported, as on the base
# install: a hard import of one fails; an optional `try: import numpy` (pyarrow's) still works.
PROBE = """
import importlib.abc, json, sys
hidden = set(json.loads(sys.argv[1]))

class BaseInstallOnly(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in hidden:
            raise ModuleNotFoundError(f"No module named {name!r} (only an extra installs it)")
        return None

if sys.argv[2] == "hide":
    sys.meta_path.insert(0, BaseInstallOnly())
import app.cli, app.main
app.main.create_app()
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def _probe(hidden: set[str], mode: str) -> set[str]:
    env = {"PREFLOOP_ENV": "test", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(sorted(hidden)), mode],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_the_web_app_and_its_cli_import_on_the_base_install() -> None:
    hidden = modules_only_extras_install()
    assert {"torch", "transformers", "trl", "datasets"} <= hidden  # the check sees the extras
    _probe(hidden, "hide")


def test_the_web_app_loads_no_training_library_even_where_installed() -> None:
    loaded = _probe(set(), "show")
    assert loaded & {"torch", "transformers", "accelerate", "peft", "trl", "datasets"} == set()
