"""The command line against a fake platform: exit codes, tables, JSON, error lines, secrets.

The CLI runs its own event loop (``asyncio.run``), so the fake runs on a second thread with a
loop of its own; the tests talk to it only through HTTP and through ``FakeThread.call``.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from helpers import FakeThread

from altcraft_async.cli import main
from altcraft_async.cli._remote import read_refs, read_segment_refs
from altcraft_async.models import DatabaseRef
from altcraft_async.testing import FakeAltcraft, Fault, TaskPlan

TOKEN = "cli-secret-token-4242"
ADMIN_TOKEN = "cli-admin-secret-9393"
T = TypeVar("T")


@pytest.fixture(scope="module")
def served() -> Iterator[FakeThread]:
    fake = FakeAltcraft.seeded(
        profiles=2_000,
        segments=6,
        seed=3,
        token=TOKEN,
        admin_token=ADMIN_TOKEN,
        task_plan=TaskPlan.immediate(),
    )
    with FakeThread(fake) as thread:
        yield thread


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ALTCRAFT_URL", "ALTCRAFT_TOKEN", "ALTCRAFT_ADMIN_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def run(
    capsys: pytest.CaptureFixture[str], served: FakeThread | None, *argv: str
) -> tuple[int, str, str]:
    """Run the CLI in-process; returns (exit code, stdout, stderr) and checks no secret leaked."""
    connection = ["--url", served.url, "--token", TOKEN] if served is not None else []
    # connection flags go after the subcommand path (they belong to the leaf parsers)
    split = next((i for i, arg in enumerate(argv) if arg.startswith("-")), len(argv))
    code = main([*argv[:split], *connection, *argv[split:]])
    out, err = capsys.readouterr()
    for secret in (TOKEN, ADMIN_TOKEN):
        assert secret not in out and secret not in err
    assert "Traceback" not in err
    return code, out, err


def expected_sendable(served: FakeThread, segment_id: int, resource_id: int) -> dict[str, int]:
    counters = served.call(lambda: served.fake.platform.segment_counters(segment_id, resource_id))
    return {channel: values["subscribed_sendable"] for channel, values in counters.items()}


def test_segment_counters_table(capsys: pytest.CaptureFixture[str], served: FakeThread) -> None:
    code, out, err = run(
        capsys,
        served,
        "segments",
        "counters",
        "--segment-id",
        "1",
        "--resource-id",
        "1",
        "--database-id",
        "1",
    )
    assert code == 0, err
    header, rule, *rows = out.strip().splitlines()
    assert header.split()[:3] == ["channel", "all", "subscribed"]
    assert set(rule) <= {"-", " "}
    expected = expected_sendable(served, 1, 1)
    sendable_column = header.split().index("subscribed_sendable")
    for row in rows:
        cells = row.split()
        assert int(cells[sendable_column]) == expected[cells[0]]


def test_segment_counters_json(capsys: pytest.CaptureFixture[str], served: FakeThread) -> None:
    code, out, err = run(
        capsys,
        served,
        "segments",
        "counters",
        "--segment-id",
        "2",
        "--resource-id",
        "1",
        "--database-id",
        "1",
        "--json",
    )
    assert code == 0, err
    data = json.loads(out)
    got = {item["channel"]: item["status"]["subscribed_sendable"] for item in data}
    assert got == expected_sendable(served, 2, 1)


@pytest.mark.parametrize("wire_format", ["json", "xml"])
def test_segment_refresh_waits_and_prints_new_counters(
    capsys: pytest.CaptureFixture[str], served: FakeThread, wire_format: str
) -> None:
    code, out, err = run(
        capsys,
        served,
        "segments",
        "refresh",
        "--segment-id",
        "3",
        "--resource-id",
        "2",
        "--database-id",
        "1",
        "--format",
        wire_format,
        "--json",
    )
    assert code == 0, err
    snapshots = json.loads(out)
    expected = served.call(lambda: served.fake.platform.segment_counters(3, 2))
    assert {c["channel"]: c["status"] for c in snapshots[0]["channels"]} == expected
    assert "\r[" not in err  # no progress bar when stderr is not a terminal


def test_refresh_without_wait_then_tasks_commands(
    capsys: pytest.CaptureFixture[str], served: FakeThread
) -> None:
    code, out, err = run(
        capsys,
        served,
        "segments",
        "refresh",
        "--segment-id",
        "1",
        "--resource-id",
        "1",
        "--database-id",
        "1",
        "--no-wait",
        "--json",
    )
    assert code == 0, err
    started = json.loads(out)
    task_id = started["task_id"]
    assert json.loads(started["resume_token"])["task_id"] == task_id

    code, out, err = run(capsys, served, "tasks", "status", task_id, "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "completed"  # the plan finishes at once

    code, out, err = run(capsys, served, "tasks", "wait", task_id)
    assert code == 0, err
    assert "email" in out

    code, out, err = run(capsys, served, "tasks", "resume", started["resume_token"], "--json")
    assert code == 0, err
    assert json.loads(out)[0]["channels"]


def test_resource_refresh(capsys: pytest.CaptureFixture[str], served: FakeThread) -> None:
    code, out, err = run(
        capsys, served, "resources", "refresh", "--resource-id", "1", "--database-id", "1"
    )
    assert code == 0, err
    expected = served.call(lambda: served.fake.platform.resource_counters(1, 1))
    email_row = next(line for line in out.splitlines() if line.startswith("email"))
    assert int(email_row.split()[1]) == expected["email"]["all"]


def database_expected(served: FakeThread, database_id: int, resource_id: int) -> Any:
    return served.call(lambda: served.fake.platform.resource_counters(resource_id, database_id))


def test_database_counters_table(capsys: pytest.CaptureFixture[str], served: FakeThread) -> None:
    code, out, err = run(
        capsys, served, "databases", "counters", "--database-id", "1", "--resource-id", "2"
    )
    assert code == 0, err
    header, _, *rows = out.strip().splitlines()
    sendable_column = header.split().index("subscribed_sendable")
    expected = database_expected(served, 1, 2)
    got = {row.split()[0]: int(row.split()[sendable_column]) for row in rows}
    assert got == {channel: values["subscribed_sendable"] for channel, values in expected.items()}


@pytest.mark.parametrize("wire_format", ["json", "xml"])
def test_database_refresh_waits_and_prints_new_counters(
    capsys: pytest.CaptureFixture[str], served: FakeThread, wire_format: str
) -> None:
    code, out, err = run(
        capsys,
        served,
        "databases",
        "refresh",
        "--database-id",
        "1",
        "--resource-id",
        "1",
        "--format",
        wire_format,
        "--json",
    )
    assert code == 0, err
    snapshots = json.loads(out)
    got = {c["channel"]: c["status"] for c in snapshots[0]["channels"]}
    assert got == database_expected(served, 1, 1)


def test_database_refresh_without_wait_then_task_wait(
    capsys: pytest.CaptureFixture[str], served: FakeThread
) -> None:
    code, out, err = run(
        capsys,
        served,
        "databases",
        "refresh",
        "--database-id",
        "1",
        "--resource-id",
        "3",
        "--no-wait",
        "--json",
    )
    assert code == 0, err
    started = json.loads(out)
    record = served.call(lambda: served.fake.tasks[started["task_id"]])
    assert (record.kind, record.database_id, record.resource_id) == ("database", 1, 3)

    code, out, err = run(capsys, served, "tasks", "resume", started["resume_token"])
    assert code == 0, err
    email_row = next(line for line in out.splitlines() if line.startswith("email"))
    assert int(email_row.split()[1]) == database_expected(served, 1, 3)["email"]["all"]


def test_database_refresh_refuses_a_bad_id_before_sending(
    capsys: pytest.CaptureFixture[str], served: FakeThread
) -> None:
    before = served.call(lambda: len(served.fake.requests))
    code, out, err = run(
        capsys, served, "databases", "refresh", "--database-id", "0", "--resource-id", "1"
    )
    assert (code, out) == (1, "")
    assert err.startswith("altcraft-async: error: InvalidRequestError") and "database_id" in err
    assert served.call(lambda: len(served.fake.requests)) == before


def test_databases_refresh_many_table(
    capsys: pytest.CaptureFixture[str], served: FakeThread, tmp_path: Path
) -> None:
    csv_file = tmp_path / "databases.csv"
    csv_file.write_text("database_id,resource_id\n1,1\n1,2\n")
    code, out, err = run(capsys, served, "databases", "refresh-many", str(csv_file))
    assert code == 0, err
    *table, summary = out.strip().splitlines()
    header, _, *rows = (line.split() for line in table)
    assert header[:4] == ["database", "resource", "channel", "all"]
    got = {
        (int(database), int(resource), channel): int(all_)
        for database, resource, channel, all_, *_ in rows
    }
    assert got == {
        (1, resource, channel): values["all"]
        for resource in (1, 2)
        for channel, values in database_expected(served, 1, resource).items()
    }
    assert summary == "2 refreshed, 0 failed"


def test_databases_refresh_many_from_stdin_reports_failures(
    capsys: pytest.CaptureFixture[str], served: FakeThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("1,1\n999,1\n"))
    code, out, _ = run(capsys, served, "databases", "refresh-many", "--json")
    assert code == 1
    by_database = {row["database_id"]: row for row in json.loads(out)}
    assert set(by_database) == {1, 999}
    assert by_database[1]["error"] is None and by_database[1]["resource_id"] == 1
    assert by_database[999]["result"] is None and by_database[999]["error"]


def test_admin_sender_queue(capsys: pytest.CaptureFixture[str], served: FakeThread) -> None:
    code, out, err = run(
        capsys,
        served,
        "admin",
        "sender-queue",
        "--sender-id",
        "1",
        "--admin-token",
        ADMIN_TOKEN,
        "--json",
    )
    assert code == 0, err
    rows = json.loads(out)
    expected = served.call(lambda: served.fake.platform.queue_stats(1))
    assert [row["total"] for row in rows] == [row["total"] for row in expected]


def test_admin_without_admin_token_is_one_error_line(
    capsys: pytest.CaptureFixture[str], served: FakeThread
) -> None:
    code, out, err = run(capsys, served, "admin", "sender-queue", "--sender-id", "1")
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1 and "admin_token" in err


def test_relations_counter(capsys: pytest.CaptureFixture[str], served: FakeThread) -> None:
    profile_id = served.call(lambda: served.fake.platform.profile_ids(1)[0])
    code, out, err = run(
        capsys, served, "relations", "counter", "--relation-id", "1", "--profile-id", profile_id
    )
    assert code == 0, err
    assert f"profile_id   {profile_id}" in out


def test_relations_counter_needs_exactly_one_match(
    capsys: pytest.CaptureFixture[str], served: FakeThread
) -> None:
    code, _, err = run(capsys, served, "relations", "counter", "--relation-id", "1")
    assert code == 2
    assert "exactly one" in err


@pytest.mark.parametrize("command", [("refresh-many",), ("segments", "refresh-many")])
def test_refresh_many_from_csv_file(
    capsys: pytest.CaptureFixture[str], served: FakeThread, tmp_path: Path, command: tuple[str]
) -> None:
    csv_file = tmp_path / "refs.csv"
    csv_file.write_text("segment_id,resource_id,database_id\n1,1,1\n2,1,1\n3,2,\n")
    code, out, err = run(capsys, served, *command, str(csv_file), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert sorted((row["segment_id"], row["resource_id"]) for row in data) == [
        (1, 1),
        (2, 1),
        (3, 2),
    ]
    assert all(row["error"] is None for row in data)


def test_refresh_many_from_stdin_reports_failures(
    capsys: pytest.CaptureFixture[str], served: FakeThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("4,1,1\n999,1,1\n"))
    code, out, _ = run(capsys, served, "refresh-many", "-")
    assert code == 1
    assert "1 refreshed, 1 failed" in out
    assert "error:" in out


def test_connection_from_environment(
    capsys: pytest.CaptureFixture[str], served: FakeThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALTCRAFT_URL", served.url)
    monkeypatch.setenv("ALTCRAFT_TOKEN", TOKEN)
    code, out, err = run(
        capsys,
        None,
        "segments",
        "counters",
        "--segment-id",
        "1",
        "--resource-id",
        "1",
        "--database-id",
        "1",
    )
    assert code == 0, err
    assert out.startswith("channel")


def test_wrong_token_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], served: FakeThread
) -> None:
    code = main(
        [
            "segments",
            "counters",
            "--url",
            served.url,
            "--token",
            "wrong-secret-777",
            "--segment-id",
            "1",
            "--resource-id",
            "1",
            "--database-id",
            "1",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert err.startswith("altcraft-async: error: AuthenticationError")
    assert err.count("\n") == 1
    assert "wrong-secret-777" not in err


def test_api_error_from_the_platform(
    capsys: pytest.CaptureFixture[str], served: FakeThread
) -> None:
    served.call(
        lambda: served.fake.faults.next("segments/get_counters", Fault.api_error(402, "tariff"))
    )
    code, _, err = run(
        capsys,
        served,
        "segments",
        "counters",
        "--segment-id",
        "1",
        "--resource-id",
        "1",
        "--database-id",
        "1",
    )
    assert code == 1
    assert "TariffLimitError" in err and "tariff" in err


def test_missing_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys,
        None,
        "segments",
        "counters",
        "--segment-id",
        "1",
        "--resource-id",
        "1",
        "--database-id",
        "1",
    )
    assert code == 2
    assert "ALTCRAFT_URL" in err


def test_invalid_id_is_refused_before_sending(
    capsys: pytest.CaptureFixture[str], served: FakeThread
) -> None:
    before = served.call(lambda: len(served.fake.requests))
    code, _, err = run(
        capsys,
        served,
        "segments",
        "counters",
        "--segment-id",
        "0",
        "--resource-id",
        "1",
        "--database-id",
        "1",
    )
    assert code == 1
    assert "InvalidRequestError" in err
    assert served.call(lambda: len(served.fake.requests)) == before


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,2\n", [(1, 2, None)]),
        ("segment_id,resource_id\n1,2,3\n\n# comment\n4,5\n", [(1, 2, 3), (4, 5, None)]),
    ],
)
def test_read_segment_refs(text: str, expected: list[tuple[int, int, int | None]]) -> None:
    refs = read_segment_refs(io.StringIO(text))
    assert [(r.segment_id, r.resource_id, r.database_id) for r in refs] == expected


@pytest.mark.parametrize("text", ["", "1\n", "a,b\nx,y\n", "1,2,3,4\n", "0,1\n", "1,,3\n"])
def test_read_segment_refs_rejects_bad_rows(text: str) -> None:
    from altcraft_async.cli._output import UsageError

    with pytest.raises(UsageError):
        read_segment_refs(io.StringIO(text))


def test_read_database_refs() -> None:
    refs = read_refs(io.StringIO("database_id,resource_id\n1,2\n# note\n\n3,4\n"), DatabaseRef)
    assert refs == [DatabaseRef(1, 2), DatabaseRef(3, 4)]


@pytest.mark.parametrize("text", ["1\n", "1,2,3\n", ",2\n", "1,x\n"])
def test_read_database_refs_rejects_bad_rows(text: str) -> None:
    from altcraft_async.cli._output import UsageError

    with pytest.raises(UsageError, match=r"^line 1: expected database_id,resource_id$"):
        read_refs(io.StringIO(text), DatabaseRef)


def run_module(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", "-m", "altcraft_async", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


@pytest.mark.parametrize("wire_format", ["json", "xml"])
def test_demo_end_to_end(wire_format: str) -> None:
    result = run_module(
        "demo",
        "--profiles",
        "3000",
        "--segments",
        "20",
        "--min-task",
        "0.05",
        "--max-task",
        "0.4",
        "--format",
        wire_format,
        "--json",
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    summary = data["summary"]
    assert summary["format"] == wire_format
    assert summary["tasks"] == len(data["segments"]) > 0
    assert summary["failed"] == 0
    assert summary["verified_against_fake"] == summary["tasks"]
    assert 1 < summary["max_tasks_in_flight"] <= summary["tasks"]  # the refreshes overlapped
    assert "\r[" not in result.stderr


def test_demo_table_output() -> None:
    result = run_module(
        "demo", "--profiles", "1000", "--segments", "4", "--min-task", "0.05", "--max-task", "0.1"
    )
    assert result.returncode == 0, result.stderr
    assert "subscribed_sendable" in result.stdout
    assert "verified_against_fake" in result.stdout
    assert "test-token" not in result.stdout + result.stderr


def test_version_and_help() -> None:
    result = run_module("--help")
    assert result.returncode == 0
    for command in ("demo", "fake-server", "segments", "databases", "refresh-many", "tasks"):
        assert command in result.stdout


def test_fake_server_command_serves_until_stopped() -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "altcraft_async", "fake-server", "--port", "0", "--profiles", "500"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        url = line.split(" on ", 1)[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        code = main(
            [
                "segments",
                "counters",
                "--url",
                url,
                "--token",
                "test-token",
                "--segment-id",
                "1",
                "--resource-id",
                "1",
                "--database-id",
                "1",
                "--json",
            ]
        )
        assert code == 0
    finally:
        server.terminate()
        server.communicate(timeout=30)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_draws_on_a_terminal_and_stays_quiet_when_piped() -> None:
    from altcraft_async.cli._output import ProgressBar

    terminal = _Terminal()
    bar = ProgressBar(4, terminal, label="refresh ")
    for done in range(1, 5):
        bar.update(done)
    bar.close()
    drawn = terminal.getvalue()
    assert drawn.startswith("\rrefresh [")
    assert "4/4" in drawn and "#" * 30 in drawn and drawn.endswith("\n")

    piped = io.StringIO()
    quiet = ProgressBar(4, piped)
    quiet.update(4)
    quiet.close()
    assert piped.getvalue() == ""


@pytest.mark.parametrize(
    "args",
    [
        ("--profiles", "-1"),
        ("--segments", "0"),
        ("--max-task", "inf"),
        ("--min-task", "nan"),
        ("--rows", "-1"),
        ("--concurrency", "0"),
    ],
)
def test_demo_refuses_bad_numbers_as_usage_errors(args: tuple[str, str]) -> None:
    result = run_module("demo", *args)
    assert result.returncode == 2, result.stderr
    assert f"argument {args[0]}" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_runs_against_a_dialect_of_the_fake() -> None:
    """The demo verifies its counters against a fake that fills in what the docs leave open
    another way (Go's nulls, a proxy's headers): what a new user sees is not only our dialect."""
    result = run_module(
        "demo", "--profiles", "1000", "--segments", "6", "--min-task", "0.05", "--max-task",
        "0.2", "--dialect", "go,proxy", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)["summary"]
    assert summary["failed"] == 0
    assert summary["verified_against_fake"] == summary["tasks"] > 0


@pytest.mark.parametrize(
    ("command", "env", "argv", "named"),
    [
        ("demo", "bogus", (), "$ALTCRAFT_FAKE_DIALECT: unknown dialect 'bogus'"),
        ("demo", "", ("--dialect", "nope"), "--dialect: unknown dialect 'nope'"),
        ("fake-server", "bogus", ("--port", "0"), "$ALTCRAFT_FAKE_DIALECT: unknown dialect"),
        ("fake-server", "go", ("--dialect", "nope"), "argument --dialect: unknown dialect 'nope'"),
    ],
)
def test_a_bad_dialect_is_a_usage_error_naming_where_it_came_from(
    command: str, env: str, argv: tuple[str, ...], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALTCRAFT_FAKE_DIALECT", env)
    result = run_module(command, *argv)
    assert result.returncode == 2, result.stderr
    assert named in result.stderr
    assert "Traceback" not in result.stderr


def test_reading_counters_takes_no_wait_option() -> None:
    """``segments counters`` reads and never waits; ``segments refresh`` waits."""
    assert "--wait-timeout" not in run_module("segments", "counters", "--help").stdout
    assert "--wait-timeout" in run_module("segments", "refresh", "--help").stdout
