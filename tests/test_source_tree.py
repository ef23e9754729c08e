r"""The source tree compiles on every supported Python: no docstring holds text UTF-8 cannot encode.

From Python 3.13 the compiler strips the indentation of docstrings (CPython gh-106411), and it
does so on the docstring's UTF-8 form: a module, class, function or async function docstring
holding a lone surrogate (a non-raw ``"\ud800"`` escape, say) makes compiling, and so importing,
the whole module fail with ``UnicodeEncodeError: 'utf-8' codec can't encode character '\ud800'``.
3.11 and 3.12 compile the same file, ``python -OO`` (no docstrings) hides the failure, and a
surrogate in any other string literal, an f-string or a bytes literal compiles everywhere: tests
that pass lone surrogates as runtime data are fine. ``ast.parse`` never fails on such a file, so
the walk below catches the problem on any Python, naming file and line.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TREES = ("altcraft_async", "tests", "benchmarks", "examples")
DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def source_files() -> list[Path]:
    """Every .py file of the package, the tests, the benchmarks, the examples and the root."""
    files = [path for tree in TREES for path in (ROOT / tree).rglob("*.py")]
    files += ROOT.glob("*.py")  # noxfile.py and any other top-level script
    return sorted(path for path in files if "__pycache__" not in path.parts)


def unencodable_docstrings(source: str | bytes, filename: str) -> Iterator[str]:
    """``file:line: what`` for each docstring that UTF-8 cannot encode (3.13 will not compile it).

    A docstring is the first statement of a module, class or (async) function when that
    statement is a plain string literal (implicitly concatenated pieces included).
    """
    tree = ast.parse(source, filename)
    for node in ast.walk(tree):
        if not isinstance(node, DOCUMENTED):
            continue
        docstring = ast.get_docstring(node, clean=False)
        if docstring is None:
            continue
        try:
            docstring.encode("utf-8")
        except UnicodeEncodeError as error:
            bad = docstring[error.start : error.end]
            line = node.body[0].lineno
            owner = "module" if isinstance(node, ast.Module) else node.name
            yield (
                f"{filename}:{line}: docstring of {owner} holds {bad!a}, which UTF-8 cannot "
                "encode (Python 3.13+ refuses to compile it): write the escape as text "
                "(a raw docstring or a doubled backslash)"
            )


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_walk_covers_the_tree() -> None:
    names = {relative(path) for path in source_files()}
    assert "altcraft_async/models/_checks.py" in names
    assert "tests/test_source_tree.py" in names
    assert any(name.startswith("benchmarks/") for name in names)
    assert any(name.startswith("examples/") for name in names)


def test_no_docstring_holds_text_that_utf8_cannot_encode() -> None:
    problems = [
        problem
        for path in source_files()
        for problem in unencodable_docstrings(path.read_bytes(), relative(path))
    ]
    assert problems == [], "\n".join(problems)


def test_every_file_compiles_on_this_python() -> None:
    """What an import (or pip's byte-compiling) does with each file, on the running Python."""
    failures = []
    for path in source_files():
        try:
            compile(path.read_bytes(), relative(path), "exec", dont_inherit=True)
        except (SyntaxError, ValueError) as error:  # UnicodeError is a ValueError
            failures.append(f"{relative(path)}: {type(error).__name__}: {error}")
    assert failures == [], "\n".join(failures)


# --- the walk itself: what it flags, and that this is what the compiler refuses -------------

FLAGGED = {
    "module": '"""Module \\ud800."""\nx = 1\n',
    "class": 'class C:\n    """Class \\udfff."""\n',
    "function": 'def f():\n    """Function \\ud800."""\n',
    "async-function": 'async def f():\n    """Async \\ud800."""\n',
    "nested-method": 'class C:\n    def f(self):\n        """Method \\ud800."""\n',
    "concatenated": 'def f():\n    "fine " "\\ud800"\n',
    "escaped-pair": 'def f():\n    """Two halves \\ud83d\\ude00 stay two surrogates."""\n',
}

NOT_FLAGGED = {
    "raw-docstring": 'def f():\n    r"""Shows the escape \\ud800 as text."""\n',
    "doubled-backslash": 'def f():\n    """Shows the escape \\\\ud800 as text."""\n',
    "runtime-data": 'def f():\n    return "task-\\ud800"\n',
    "default-argument": 'def f(value="\\udfff"):\n    return value\n',
    "lambda": 'call = lambda c: c.status("task-\\ud800")\n',
    "fstring-first-statement": 'def f():\n    f"\\ud800{1}"\n',
    "string-after-first-statement": 'def f():\n    pass\n    """\\ud800"""\n',
    "bytes": 'def f():\n    b"\\xed\\xa0\\x80"\n',
    "real-character": 'def f():\n    """\\U0001f600 is one character."""\n',
}


@pytest.mark.parametrize("source", FLAGGED.values(), ids=FLAGGED.keys())
def test_the_walk_flags_docstrings_that_utf8_cannot_encode(source: str) -> None:
    (problem,) = unencodable_docstrings(source, "snippet.py")
    assert problem.startswith("snippet.py:")
    if sys.version_info < (3, 13):
        compile(source, "snippet.py", "exec", dont_inherit=True)  # older Pythons never noticed


@pytest.mark.parametrize("source", NOT_FLAGGED.values(), ids=NOT_FLAGGED.keys())
def test_the_walk_leaves_runtime_surrogates_alone(source: str) -> None:
    assert list(unencodable_docstrings(source, "snippet.py")) == []
    compile(source, "snippet.py", "exec", dont_inherit=True)  # on every Python, 3.13 included


@pytest.mark.parametrize("source", [*FLAGGED.values(), *NOT_FLAGGED.values()])
def test_whatever_this_python_refuses_to_compile_the_walk_flags(source: str) -> None:
    try:
        compile(source, "snippet.py", "exec", dont_inherit=True)
    except UnicodeEncodeError:
        assert list(unencodable_docstrings(source, "snippet.py")) != []
