"""The pytest plugin is cheap to load: pytest imports it into every run of every project that
installs the SDK, and the fake (aiohttp.web and all) loads only when a test asks for a fixture.

``altcraft_async.testing`` re-exports its names lazily (PEP 562); these tests keep that table,
``__all__`` and the imports type checkers read the same list, and every name resolvable.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import altcraft_async.testing

TESTING_INIT = Path(altcraft_async.testing.__file__)


def run_fresh(code: str) -> object:
    """What ``code`` prints as JSON, run in a new interpreter (nothing imported yet)."""
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return json.loads(out)


def test_loading_the_plugin_does_not_load_the_fake_or_aiohttp_web() -> None:
    loaded = run_fresh(
        "import json, sys, altcraft_async.testing.pytest_plugin; "
        "print(json.dumps(sorted(m for m in sys.modules "
        "if m.startswith(('altcraft_async.testing', 'aiohttp.web')))))"
    )
    assert loaded == ["altcraft_async.testing", "altcraft_async.testing.pytest_plugin"]


def test_every_public_name_resolves_on_first_use_and_loads_its_module() -> None:
    code = (
        "import json, sys, altcraft_async.testing as t; "
        "before = '_server' in vars(t) or 'altcraft_async.testing._server' in sys.modules; "
        "missing = [n for n in t.__all__ if getattr(t, n, None) is None]; "
        "from altcraft_async.testing import FakeAltcraft; "
        "print(json.dumps({'before': before, 'missing': missing, "
        "'fake_module': FakeAltcraft.__module__, "
        "'server_loaded': 'altcraft_async.testing._server' in sys.modules, "
        "'dir_has_all': set(t.__all__) <= set(dir(t))}))"
    )
    assert run_fresh(code) == {
        "before": False,
        "missing": [],
        "fake_module": "altcraft_async.testing._server",
        "server_loaded": True,
        "dir_has_all": True,
    }


def test_a_star_import_gives_exactly_the_public_names() -> None:
    names = run_fresh(
        "import json; from altcraft_async.testing import *; "
        "print(json.dumps(sorted(n for n in dir() if not n.startswith('_') and n != 'json')))"
    )
    assert names == sorted(altcraft_async.testing.__all__)


def test_an_unknown_name_is_an_attribute_error_naming_it() -> None:
    with pytest.raises(
        AttributeError, match=re.escape("'altcraft_async.testing' has no attribute 'Nope'")
    ):
        altcraft_async.testing.Nope  # type: ignore[attr-defined]  # noqa: B018


def test_the_lazy_table_all_and_the_type_checking_imports_list_the_same_names() -> None:
    tree = ast.parse(TESTING_INIT.read_text(encoding="utf-8"))
    typed: dict[str, set[str]] = {}  # submodule -> names, from `if TYPE_CHECKING:` imports
    lazy: dict[str, set[str]] = {}  # submodule -> names, from the _LAZY table
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom)
                module = "." * statement.level + (statement.module or "")
                typed[module] = {alias.name for alias in statement.names}
        if isinstance(node, ast.AnnAssign) and ast.unparse(node.target) == "_LAZY":
            assert node.value is not None
            table = ast.literal_eval(node.value)
            lazy = {module: set(names) for module, names in table.items()}
    assert typed and typed == lazy
    public = altcraft_async.testing.__all__
    assert len(public) == len(set(public))
    assert set(public) == {name for names in lazy.values() for name in names}
