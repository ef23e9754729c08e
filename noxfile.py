"""Test sessions: the whole suite on every supported Python, the integration tests on uvloop.

    nox -s tests-3.12           # the suite on one Python (tests-3.11, tests-3.13 likewise)
    nox -s uvloop               # the integration tests on uvloop's event loop
    nox -s tests-3.13 -- -x -k awaiter    # anything after -- goes to pytest
    nox -s typing               # mypy and pyright on user code, pyright's type completeness

.ci/run runs the 3.11 suite as the README does (``python -m pytest`` in a venv with
``.[dev]``) and the other sessions here, two at a time. The interpreters are pyenv's: the
newest installed patch release of each supported minor version (``$PYENV_ROOT/versions/3.X.Y``)
is put first on PATH, since pyenv's own ``python3.X`` shims only answer for the active version.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nox

PYTHONS = ("3.11", "3.12", "3.13")
UVLOOP_PYTHON = PYTHONS[-1]
INTEGRATION = (
    "tests/test_client.py",
    "tests/test_awaiter.py",
    "tests/test_fanout.py",
    "tests/test_push.py",
    "tests/test_client_lifecycle.py",
    "tests/test_event_loop.py",  # fails unless the loops really are uvloop's
)

nox.options.sessions = [*(f"tests-{python}" for python in PYTHONS), "uvloop"]
nox.options.error_on_missing_interpreters = True  # a missing Python fails, never skips
nox.options.download_python = "never"  # pyenv's Pythons only, nothing fetched


def pyenv_bins(root: Path, minors: tuple[str, ...]) -> list[str]:
    """``root/versions/X.Y.Z/bin`` of the newest installed X.Y.Z of each minor that has one
    (release builds only: ``3.13.0t`` or ``3.13-dev`` are not picked)."""
    found = []
    for minor in minors:
        builds = [
            path
            for path in (root / "versions").glob(f"{minor}.*")
            if re.fullmatch(rf"{re.escape(minor)}\.\d+", path.name)
            and (path / "bin" / f"python{minor}").is_file()
        ]
        if builds:
            newest = max(builds, key=lambda path: int(path.name.rsplit(".", 1)[1]))
            found.append(str(newest / "bin"))
    return found


def use_pyenv_pythons() -> None:
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    path = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([*pyenv_bins(root, PYTHONS), path])


use_pyenv_pythons()


def install(session: nox.Session) -> None:
    session.install("-e", ".[dev]")


#: The fake's dialects the integration tests run against here (tests/conftest.py): the whole
#: matrix runs once, in the README's command; the other Pythons and uvloop take a part of it.
DIALECTS = os.environ.get("ALTCRAFT_TEST_DIALECTS", "plain")


@nox.session(python=list(PYTHONS))
def tests(session: nox.Session) -> None:
    """The whole suite but the benchmarks' smoke run (the integration tests on the ``plain`` dialect
    unless told)."""
    install(session)
    session.run(
        "python",
        "-m",
        "pytest",
        # the benchmarks' smoke run (20 s) proves the benchmark code, not the SDK on this
        # Python: the README's run and CI's instruction job run the benchmarks
        "--ignore=tests/test_benchmarks_smoke.py",
        *session.posargs,
        env={"ALTCRAFT_TEST_DIALECTS": DIALECTS},
    )


@nox.session(python=UVLOOP_PYTHON)
def uvloop(session: nox.Session) -> None:
    """The integration tests once more, every event loop uvloop's (tests/conftest.py)."""
    install(session)
    session.run(
        "python",
        "-m",
        "pytest",
        *INTEGRATION,
        *session.posargs,
        env={"ALTCRAFT_TEST_UVLOOP": "1", "ALTCRAFT_TEST_DIALECTS": "plain,go"},
    )


@nox.session(python=PYTHONS[0])
def typing(session: nox.Session) -> None:
    """What users' type checkers see: ``.ci/check_typing.py`` (also in .ci/run's lint job)."""
    install(session)
    session.run("python", ".ci/check_typing.py")
