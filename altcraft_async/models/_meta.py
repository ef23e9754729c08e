"""Field markers the decoder reads: which fields are informational.

An *informational* field describes a reply (when it was computed, which ids it echoes) without
being what the caller asked for. Tolerant reading (DESIGN.md): such a field never costs the whole
reply; a value that cannot be read as its type becomes the field's default (None, "", False),
where a documented value (a counter, a task id) that cannot be read is a DecodeError.
"""

from __future__ import annotations

from typing import Any

from attrs import field

__all__ = ["INFORMATIONAL", "informational"]

#: The attrs metadata key the decoder looks for.
INFORMATIONAL = "altcraft_async.informational"


def informational(default: Any) -> Any:
    """An attrs field with ``default`` that the decoder reads tolerantly (see the module)."""
    return field(default=default, metadata={INFORMATIONAL: True})
