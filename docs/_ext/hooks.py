"""mkdocs hooks: the reference must document every public name.

A name added to ``altcraft_async.__all__`` (or the ``__all__`` of ``testing``, ``fleet``,
``fleet.arq``) without a
``::: altcraft_async.<name>`` block on a reference page is a warning, so the strict build
fails until the reference shows it.
"""

from __future__ import annotations

import importlib
import logging
import re
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.reference")

PUBLIC_MODULES = (
    "altcraft_async",
    "altcraft_async.testing",
    "altcraft_async.fleet",
    "altcraft_async.fleet.arq",
)
DIRECTIVE = re.compile(r"^::: (\S+)", re.MULTILINE)


def on_pre_build(config: Any, **kwargs: Any) -> None:
    reference = Path(config["docs_dir"]) / "reference"
    documented = {
        name for page in reference.glob("*.md") for name in DIRECTIVE.findall(page.read_text())
    }
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            if f"{module_name}.{name}" not in documented:
                log.warning(
                    "%s.%s is public but no page of docs/reference/ documents it "
                    "(add '::: %s.%s' where it belongs)",
                    module_name,
                    name,
                    module_name,
                    name,
                )
