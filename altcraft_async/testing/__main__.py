"""Run the fake platform standalone: ``python -m altcraft_async.testing --port 8080``
(``altcraft-async fake-server`` on the command line).

Useful for demos, for trying a client by hand and for a container in a test stack. The
platform is the seeded one; tasks take a random 0.5-5 s (virtual; see ``--time-scale``) unless
``--plan`` says otherwise; it answers in the documentation's way unless ``--dialect`` (or
``$ALTCRAFT_FAKE_DIALECT``) names another.

Its first line of output, flushed at once so that a parent process can read it, is the URL and
the tokens it accepts: they are test values, not secrets. SIGTERM or SIGINT (Ctrl-C) stops it
cleanly with exit code 0, also as PID 1 in a container, which gets no default SIGTERM handler.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from ._dialects import ENV_VAR, PRESETS, Dialect
from ._env import realistic_plan
from ._server import FakeAltcraft
from ._tasks import PlanSource, TaskPlan

__all__ = ["DESCRIPTION", "STOP_SIGNALS", "main"]

DESCRIPTION = """\
Run a fake Altcraft platform with seeded data on a local port, for demos, trying a client by
hand, or a test stack. It first prints the URL and the tokens it accepts (test values, not
secrets); SIGTERM or Ctrl-C stops it (exit code 0)."""

#: The signals that stop the server gracefully.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _plan(text: str) -> PlanSource:
    """realistic (0.5-5 s), immediate, never, polls:N or seconds:T"""
    fixed: dict[str, PlanSource] = {
        "realistic": realistic_plan,
        "immediate": TaskPlan.immediate(),
        "never": TaskPlan.never(),
    }
    if text in fixed:
        return fixed[text]
    kind, _, value = text.partition(":")
    if kind == "polls":
        return TaskPlan.after_polls(int(value))
    if kind == "seconds":
        return TaskPlan.after_seconds(float(value))
    raise argparse.ArgumentTypeError(f"unknown plan {text!r}")


def _dialect(text: str) -> Dialect:
    try:
        return Dialect.named(text)
    except ValueError as exc:  # argparse would print only "invalid value" for a ValueError
        raise argparse.ArgumentTypeError(str(exc)) from None


def _arguments(argv: list[str] | None, prog: str) -> argparse.Namespace:
    """The options; every one has a help text, so ``--help`` shows every default."""
    parser = argparse.ArgumentParser(
        prog=prog, description=DESCRIPTION, formatter_class=_HelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (0: any free)")
    parser.add_argument("--token", default="test-token", help="user API token it accepts")
    parser.add_argument("--admin-token", default="admin-token", help="admin API token it accepts")
    parser.add_argument("--profiles", type=int, default=10_000, help="seeded profiles")
    parser.add_argument("--segments", type=int, default=50, help="seeded segments")
    parser.add_argument("--resources", type=int, default=3, help="seeded resources")
    parser.add_argument("--seed", type=int, default=1, help="seed of the data and the tasks")
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="speed of task time (2: twice as fast)"
    )
    # argparse passes a string default through ``type``: the default is shown by its name
    parser.add_argument(
        "--plan", type=_plan, default="realistic", help=f"how long tasks take: {_plan.__doc__}"
    )
    parser.add_argument(
        "--dialect",
        type=_dialect,
        default=argparse.SUPPRESS,  # then $ALTCRAFT_FAKE_DIALECT, checked below as itself
        metavar="NAME[,NAME]",
        help=(
            f"how to fill in what the docs leave open: {', '.join(PRESETS)}, combined with "
            f"commas (default: ${ENV_VAR}, else plain)"
        ),
    )
    args = parser.parse_args(argv)
    if not hasattr(args, "dialect"):
        try:
            args.dialect = Dialect.from_env()
        except ValueError as exc:  # a bad variable is named as such, not as --dialect
            parser.error(str(exc))
    return args


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults after every option; the description's paragraphs kept as written."""


def _banner(fake: FakeAltcraft) -> str:
    """The start-up line a person or a parent process reads: where to connect, with what."""
    return (
        f"FakeAltcraft listening on {fake.url}  token={fake.token}  "
        f"admin_token={fake.admin_token}  (test values, not secrets)"
    )


async def _serve(args: argparse.Namespace) -> None:
    fake = FakeAltcraft.seeded(
        profiles=args.profiles,
        segments=args.segments,
        resources=args.resources,
        seed=args.seed,
        token=args.token,
        admin_token=args.admin_token,
        task_plan=args.plan,
        time_scale=args.time_scale,
        host=args.host,
        port=args.port,
        dialect=args.dialect,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for number in STOP_SIGNALS:
        # as PID 1 a process has no default SIGTERM action: without a handler it ignores it
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C stays KeyboardInterrupt
            loop.add_signal_handler(number, stop.set)
            installed.append(number)
    try:
        async with fake:
            print(_banner(fake), flush=True)
            print(f"{fake.platform!r}, {fake.dialect!r}; SIGTERM or Ctrl-C stops it", flush=True)
            await stop.wait()
    finally:
        for number in installed:
            loop.remove_signal_handler(number)
    print("FakeAltcraft stopped", flush=True)


def main(argv: list[str] | None = None, *, prog: str = "python -m altcraft_async.testing") -> int:
    """Serve until SIGTERM or SIGINT; returns the exit code (0 on a graceful stop).

    ``prog`` is the name the usage line shows (the CLI passes ``altcraft-async fake-server``).
    """
    args = _arguments(argv, prog)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
