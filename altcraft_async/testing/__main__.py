"""Run the fake platform standalone: ``python -m altcraft_async.testing --port 8080``.

Useful for demos and for trying a client by hand. The platform is the seeded one; tasks take a
random 0.5-5 s (virtual; see ``--time-scale``) unless ``--plan`` says otherwise; it answers in
the documentation's way unless ``--dialect`` (or ``$ALTCRAFT_FAKE_DIALECT``) names another.
Tokens are never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from ._dialects import PRESETS, Dialect
from ._env import realistic_plan
from ._server import FakeAltcraft
from ._tasks import PlanSource, TaskPlan


def _plan(text: str) -> PlanSource:
    """``realistic``, ``immediate``, ``never``, ``polls:N`` or ``seconds:T``."""
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


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m altcraft_async.testing", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--token", default="test-token")
    parser.add_argument("--admin-token", default="admin-token")
    parser.add_argument("--profiles", type=int, default=10_000)
    parser.add_argument("--segments", type=int, default=50)
    parser.add_argument("--resources", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--plan", type=_plan, default=realistic_plan, help=_plan.__doc__)
    parser.add_argument(
        "--dialect",
        type=_dialect,
        default=None,
        metavar="NAME[,NAME]",
        help=(
            f"how to fill in what the docs leave open: {', '.join(PRESETS)}, combined with "
            "commas (default: $ALTCRAFT_FAKE_DIALECT, else plain)"
        ),
    )
    args = parser.parse_args(argv)
    if args.dialect is None:
        try:  # resolved here so that a bad variable is a usage error, not a traceback
            args.dialect = Dialect.from_env()
        except ValueError as exc:
            parser.error(str(exc))
    return args


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
    async with fake:
        print(
            f"fake Altcraft on {fake.url} ({fake.platform!r}, {fake.dialect!r}); Ctrl-C stops it",
            flush=True,
        )
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(_arguments(argv)))


if __name__ == "__main__":
    main()
