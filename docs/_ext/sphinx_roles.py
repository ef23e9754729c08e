"""A griffe extension for the API reference: the docstrings' Sphinx roles as links.

The SDK's docstrings cross-reference with Sphinx roles (``:class:`Task```, ``:meth:`wait```);
mkdocstrings renders Markdown, where a role would show as literal text. Before rendering, each
role becomes an optional autoref to the name it means in the docstring's scope: a link when
the reference documents that object, plain code when it does not (a private helper, say), so
the strict build fails only on the pages' own broken links. A reST ``::`` that introduces a
literal block becomes ``:`` (the indented block is a Markdown code block already).
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|meth|func|attr|data|mod|exc|obj):`(?P<target>[^`]+)`")
LITERAL_INTRO = re.compile(r"(?<=\S)::$", re.MULTILINE)


class SphinxRoles(griffe.Extension):
    """Rewrites every docstring of the package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for obj in _walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = rewrite(obj, obj.docstring.value)


def _walk(obj: griffe.Object) -> list[griffe.Object]:
    found = [obj]
    for member in obj.members.values():
        if not member.is_alias:
            found += _walk(member)  # type: ignore[arg-type]
    return found


def rewrite(scope: griffe.Object, text: str) -> str:
    def link(match: re.Match[str]) -> str:
        target = match["target"].strip()
        shown = target.lstrip("~").rsplit(".", 1)[-1] if target.startswith("~") else target
        shown = shown.removesuffix("()")
        identifier = _resolve(scope, target.lstrip("~").removesuffix("()"))
        code = f"<code>{html.escape(shown)}</code>"
        if identifier is None:
            return code
        return f'<autoref identifier="{html.escape(identifier)}" optional>{code}</autoref>'

    return LITERAL_INTRO.sub(":", ROLE.sub(link, text))


def _resolve(scope: griffe.Object, dotted: str) -> str | None:
    """The full path of ``dotted`` as Python would look it up from ``scope``, or None."""
    if dotted.startswith("altcraft_async."):
        return dotted
    first, _, rest = dotted.partition(".")
    try:
        path = scope.resolve(first)
    except (griffe.NameResolutionError, AttributeError):
        return None
    return f"{path}.{rest}" if rest else path
