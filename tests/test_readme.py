"""The README's code works: every ```python block of README.md type-checks under
``mypy --strict`` and runs against the embedded fake; every examples/*.py type-checks too
(tests/test_examples.py runs them).

How a block becomes a file (one scheme for every block, so new blocks need no set-up):

- A block is a *fragment* unless it ends by running its own ``asyncio.run(...)``. A fragment
  becomes the body of ``async def block(client, other_client, url, token, latency)``, after
  ``PREAMBLE``, which imports every public name of ``altcraft_async``: it may use top-level
  ``await``, ``async with`` and ``async for``, those names and the ``GIVEN`` ones (the objects
  the README's prose takes as given: a connected ``client``, ...) without setting them up.
- A *program* (a line ``asyncio.run(...)`` at the top level) is a module as written, its
  placeholders (``https://your.altcraft.host``, ``token="..."``) pointed at the fake.
- An HTML comment on the line before the block's fence changes that:
  ``<!-- readme: no-run -->`` type-checks it only (it needs what a test run has not: a public
  callback URL, pytest's fixtures), ``<!-- readme: skip -->`` leaves it out altogether.

A run is a process of its own (``python -W error``) against one FakeAltcraft holding the ids the
README uses (segments 7 and 8 of resource 24 in database 1); it must exit 0 with nothing on
stderr. A block that needs another given name: add it to ``GIVEN`` (and ``RUNNER``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

import altcraft_async
from altcraft_async.testing import FakeAltcraft, seeded_platform

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))

PLACEHOLDER_URL = "https://your.altcraft.host"
PLACEHOLDER_TOKEN = 'token="..."'

#: The names a fragment may use without defining them, with their types.
GIVEN = {
    "client": "AltcraftClient",
    "other_client": "AltcraftClient",
    "url": "str",
    "token": "str",
    "latency": "Histogram",
}

PREAMBLE = f"""\
from __future__ import annotations

import asyncio
import os

from altcraft_async import {", ".join(sorted(set(altcraft_async.__all__) - {"__version__"}))}


class Histogram:
    \"\"\"A metrics library's histogram (prometheus_client's, say), as the README uses it.\"\"\"

    def labels(self, *values: str) -> Histogram:
        return self

    def observe(self, value: float) -> None:
        pass

"""

#: After a fragment: connect the given names to the fake ($README_URL, $README_TOKEN) and run.
RUNNER = """

async def run() -> None:
    url, token = os.environ["README_URL"], os.environ["README_TOKEN"]
    async with AltcraftClient(url, token=token) as client:
        async with AltcraftClient(url, token=token) as other_client:
            await block(client, other_client, url, token, Histogram())


if __name__ == "__main__":
    asyncio.run(run())
"""

FENCE = re.compile(r"^```python\n(.*?)^```$", re.M | re.S)
MARK = re.compile(r"<!--\s*readme:\s*([\w-]+)\s*-->\s*\Z")


class Block:
    """One ```python block: where it is, how it is treated, and the file it becomes."""

    def __init__(self, source: str, line: int, mark: str | None) -> None:
        self.source = source
        self.line = line  # of its first line in README.md
        self.mark = mark
        self.program = re.search(r"^asyncio\.run\(", source, re.M) is not None
        self.name = f"readme_line_{line}"

    def module(self) -> tuple[str, int]:
        """The file's text and the file line of the block's first line."""
        if self.program:
            return PREAMBLE + self.source, PREAMBLE.count("\n") + 1
        params = ", ".join(f"{name}: {kind}" for name, kind in GIVEN.items())
        head = f"{PREAMBLE}\nasync def block({params}) -> None:\n"
        body = "".join(
            f"    {line}" if line.strip() else line for line in self.source.splitlines(True)
        )
        return head + body + "    return None\n" + RUNNER, head.count("\n") + 1

    def runnable(self, url: str, token: str) -> str:
        text, _ = self.module()
        if self.program:
            text = text.replace(PLACEHOLDER_URL, url).replace(PLACEHOLDER_TOKEN, f"token={token!r}")
        return text


def readme_blocks() -> Iterator[Block]:
    text = README.read_text(encoding="utf-8")
    for match in FENCE.finditer(text):
        before = text[: match.start()]
        mark = MARK.search(before)  # a marker right before the fence
        line = before.count("\n") + 2
        block = Block(match.group(1), line, mark.group(1) if mark else None)
        if block.mark != "skip":
            yield block


BLOCKS = list(readme_blocks())


def test_the_scheme_finds_the_readme_blocks() -> None:
    """The fence pattern still matches the README (a block it missed would go unchecked)."""
    assert len(BLOCKS) == README.read_text(encoding="utf-8").count("```python") > 0
    assert all(block.mark in (None, "no-run") for block in BLOCKS)


@pytest.fixture(scope="module")
def mypy_errors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """One ``mypy --strict`` run over every block's file and every example: errors by file."""
    folder = tmp_path_factory.mktemp("readme")
    starts: dict[str, tuple[int, int]] = {}
    errors: dict[str, list[str]] = {}
    for block in BLOCKS:
        text, first = block.module()
        try:  # mypy stops at a syntax error in any file: leave that one out and report it
            compile(text, block.name, "exec")
        except SyntaxError as error:
            errors[block.name] = [
                f"README.md:{(error.lineno or first) - first + block.line}: {error}"
            ]
            continue
        (folder / f"{block.name}.py").write_text(text, encoding="utf-8")
        starts[block.name] = (first, block.line)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(folder / ".mypy_cache"),
            "--no-error-summary",
            *(str(path) for path in sorted(folder.glob("*.py"))),
            *(str(path) for path in EXAMPLES),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert result.returncode in (0, 1), result.stdout + result.stderr  # 2: mypy itself failed
    for line in result.stdout.splitlines():
        where = re.match(r"(.+?):(\d+): (?:error|note)", line)
        if where is None:
            continue
        stem = Path(where.group(1)).stem
        if stem in starts:  # report README.md's own line numbers
            first, readme_line = starts[stem]
            line = (
                f"README.md:{int(where.group(2)) - first + readme_line}:{line[where.end(2) + 1 :]}"
            )
        errors.setdefault(stem, []).append(line)
    return errors


@pytest.mark.parametrize("block", BLOCKS, ids=[block.name for block in BLOCKS])
def test_readme_block_type_checks(block: Block, mypy_errors: dict[str, list[str]]) -> None:
    assert mypy_errors.get(block.name, []) == [], "\n".join(mypy_errors[block.name])


@pytest.mark.parametrize("example", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_type_checks(example: Path, mypy_errors: dict[str, list[str]]) -> None:
    assert mypy_errors.get(example.stem, []) == [], "\n".join(mypy_errors[example.stem])


def readme_fake() -> FakeAltcraft:
    """The README's ids: segments 7 and 8 of resource 24 in database 1."""
    return FakeAltcraft(seeded_platform(profiles=500, segments=10, resources=24, databases=1))


RUNNABLE = [block for block in BLOCKS if block.mark != "no-run"]


@pytest.mark.anyio
@pytest.mark.parametrize("block", RUNNABLE, ids=[block.name for block in RUNNABLE])
async def test_readme_block_runs_against_the_fake(block: Block, tmp_path: Path) -> None:
    async with readme_fake() as fake:
        script = tmp_path / f"{block.name}.py"
        script.write_text(block.runnable(fake.url, fake.token), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALTCRAFT_")}
        # the account a block may leave to the environment (``AltcraftClient()``) is the fake
        env.update(
            README_URL=fake.url,
            README_TOKEN=fake.token,
            ALTCRAFT_URL=fake.url,
            ALTCRAFT_TOKEN=fake.token,
            ALTCRAFT_ADMIN_TOKEN=fake.admin_token,
        )
        with anyio.fail_after(120):
            result = await anyio.run_process(
                [sys.executable, "-W", "error", str(script)], env=env, check=False
            )
    output = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 0, f"README.md line {block.line}:\n{output}"
    assert result.stderr.decode() == "", output
