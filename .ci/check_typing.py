"""The typing checks users' type checkers make of the SDK (issue 15): any failure fails CI.

    python .ci/check_typing.py        # from the repository root, in a venv with .[dev]

1. ``mypy --strict`` and ``pyright`` (strict, by the file's own comment) on
   ``tests/typing/usage.py``: ordinary user code whose ``assert_type`` lines pin the inferred
   types, narrowing of ``Outcome`` included.
2. ``pyright --verifytypes altcraft_async --ignoreexternal``: the share of public symbols
   whose types are known and unambiguous must be at least ``MIN_COMPLETENESS``. Types from
   other packages (aiohttp, pytest) are ignored: their completeness is not ours to fix.

pyright comes from PyPI (the dev extra); the wheel carries pyright itself and runs on the
machine's ``node``, so nothing is downloaded here. About 25 s on the 2-core CI machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

USAGE = "tests/typing/usage.py"
MIN_COMPLETENESS = 0.95
PYRIGHT = (sys.executable, "-m", "pyright")
ENV = {
    **os.environ,
    # pyright finds the packages through the `python` on PATH: this venv's, activated or not
    "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
    # no "a newer pyright exists" check (a request to PyPI) and no warning about it
    "PYRIGHT_PYTHON_IGNORE_WARNINGS": "1",
}


def run(*command: str) -> subprocess.CompletedProcess[str]:
    print("$", " ".join(command), flush=True)
    return subprocess.run(command, env=ENV, text=True, capture_output=True, check=False)


def main() -> int:
    failed = False
    for command in (
        (sys.executable, "-m", "mypy", "--strict", USAGE),
        (*PYRIGHT, USAGE),
    ):
        result = run(*command)
        print(result.stdout + result.stderr, end="", flush=True)
        failed |= result.returncode != 0

    result = run(
        *PYRIGHT,
        "--verifytypes",
        "altcraft_async",
        "--ignoreexternal",
        "--outputjson",
    )
    try:
        report = json.loads(result.stdout)["typeCompleteness"]
    except (ValueError, KeyError):
        print(result.stdout + result.stderr)
        return 1
    for symbol in report["symbols"]:
        for diagnostic in symbol["diagnostics"]:
            if diagnostic["severity"] == "error":
                print(f"{symbol['name']}: {diagnostic['message']}")
    score = report["completenessScore"]
    counts = report["exportedSymbolCounts"]
    print(
        f"type completeness {score:.1%} (at least {MIN_COMPLETENESS:.0%}): "
        f"{counts['withKnownType']} known, {counts['withAmbiguousType']} ambiguous, "
        f"{counts['withUnknownType']} unknown"
    )
    failed |= score < MIN_COMPLETENESS
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
