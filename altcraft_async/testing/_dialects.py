"""Dialects: how another server fills in what the Altcraft docs leave open.

The docs show one happy example per endpoint. The real platform is a Go service behind nginx,
and whatever the examples do not pin down, a server decides its own way: Go marshals a nil
slice as ``null``, nginx gzips and chunks, a PHP backend prints a byte-order mark, a Java one
spells statuses as enum names. A fake that answers only the way the examples look proves a
client against a mirror of its own assumptions. A :class:`Dialect` names those decisions as
independent options, so the fake can talk like any of those servers, one option at a time or
all at once (``Dialect.named("go,proxy")``, or ``$ALTCRAFT_FAKE_DIALECT``).

Every option keeps the meaning: the same state says the same thing in every dialect to a
reader that follows the docs' contract. The fake's state never knows about dialects: replies
are built as the docs show them (the ``plain`` rendering), and a dialect re-renders them at the
edge (data and statuses here, bytes in :mod:`._wire`, HTTP in :mod:`._server`).
"""

from __future__ import annotations

import email.utils
import functools
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Final, Literal, get_args

import attrs
from attrs import field, frozen

from ._tasks import StatusView
from ._wire import CONTENT_TYPES, Format, encode_reply

__all__ = ["ENV_VAR", "PRESETS", "Dialect"]

#: The environment variable a fake reads its dialect from when none is given.
ENV_VAR: Final = "ALTCRAFT_FAKE_DIALECT"

TimeFraction = Literal["ms", "nano", "trimmed"]
StatusCase = Literal["as_is", "upper", "title"]
FailedResult = Literal["absent", "null", "reason", "object"]

#: Wire keys holding a timestamp (a Go ``time.Time``): the snapshot's ``updated``.
_TIME_KEYS = frozenset({"updated"})
#: Wire keys holding a free-form map (a Go ``map[string]any``): its entries are data, not
#: struct fields, so ``omitempty`` never drops one and nothing inside is re-rendered.
_MAP_KEYS = frozenset({"props"})
_GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
_OFFSET = re.compile(r"([+-])([01]\d|2[0-3]):([0-5]\d)")
_FAILURE_REASON = "counters refresh failed"
_OMIT: Final = object()  # marks a key that omitempty drops


def _choice(kind: Any, default: str) -> Any:
    """An attrs field holding one of the values of the Literal ``kind``."""
    return field(default=default, validator=attrs.validators.in_(get_args(kind)))


def _check_offset(
    instance: Dialect, attribute: attrs.Attribute[str | None], value: str | None
) -> None:
    if value is not None and not _OFFSET.fullmatch(value):
        raise ValueError(f"utc_offset must look like '+03:00' or '-05:30', got {value!r}")


@frozen(repr=False)
class Dialect:
    """How the fake renders what the docs leave open; every option defaults to the docs' way.

    Go's ``encoding/json`` (a Go service):

    - ``null_lists``: an empty or absent list is ``null`` (a nil slice), also a running or
      failed task's ``result``, an empty ``data`` list and empty ``channels``.
    - ``null_maps``: an empty map is ``null`` (a nil map: ``props``).
    - ``omit_empty``: ``omitempty`` tags: fields holding ``""``, ``null``, an empty list or an
      empty map are left out; numbers and booleans stay, so counters keep their zeros. Lists
      and maps that ``null_lists`` / ``null_maps`` turn into ``null`` stay (a struct whose
      slices carry no ``omitempty`` tag); the entries of a free-form map (``props``) are data,
      never dropped.
    - ``time_fraction``: ``"ms"`` (3 digits, as the docs), ``"nano"`` (always 9 digits, a
      fixed ``.000000000`` layout) or ``"trimmed"`` (Go's ``RFC3339Nano``: trailing zeros and
      a zero fraction dropped). The instant never changes.
    - ``utc_offset``: timestamps in a local zone (``"+03:00"``: a server with ``TZ`` set),
      the same instant.
    - ``zero_time``: an absent optional timestamp is Go's zero time ``0001-01-01T00:00:00Z``
      (in the dialect's fraction layout, always UTC) instead of ``null``; ``omit_empty``
      never drops it (``time.Time`` is a struct).
    - ``json_compact``: no spaces after ``,`` and ``:``, as ``json.Marshal`` writes.

    Statuses (other backends, older platform versions):

    - ``status_case``: ``"upper"`` (enum names: ``COMPLETED``, ``PROCESSING``) or ``"title"``
      (``Completed``).
    - ``status_padding``: surrounding whitespace (``" completed "``: a padded ``CHAR`` column).
    - ``legacy_success``: ``success`` instead of ``completed`` (older docs pages).
    - ``progress_as_string``: ``"42"`` (PHP reading numbers from MySQL as strings).
    - ``omit_pending_progress``: no ``progress`` while the task is pending (nothing started).
    - ``failed_result``: a failed task's ``result`` is absent (the fake's own way), ``null``,
      a reason string or an object with a code and a message.

    A proxy (nginx) in front, or a sloppy backend:

    - ``gzip``: ``Content-Encoding: gzip`` when the request accepts it.
    - ``chunked``: ``Transfer-Encoding: chunked``, no ``Content-Length``.
    - ``connection_close``: ``Connection: close``, no keep-alive.
    - ``text_plain``: ``Content-Type: text/plain; charset=utf-8`` whatever the format.
    - ``retry_after_date``: a 429's ``Retry-After`` as an HTTP date (1 s resolution, rounded
      up so the client never returns early; 0 stays "now").
    - ``bom``: a UTF-8 byte-order mark before the body (a source file saved with one).

    XML (a Java or .NET serializer):

    - ``xml_prolog``: ``<?xml version="1.0" encoding="UTF-8"?>`` first.
    - ``xml_indent``: one element per line, indented by two spaces.
    - ``xml_short_empty``: empty elements as ``<x/>``.
    """

    null_lists: bool = False
    null_maps: bool = False
    omit_empty: bool = False
    time_fraction: TimeFraction = _choice(TimeFraction, "ms")
    utc_offset: str | None = field(default=None, validator=_check_offset)
    zero_time: bool = False
    json_compact: bool = False
    status_case: StatusCase = _choice(StatusCase, "as_is")
    status_padding: bool = False
    legacy_success: bool = False
    progress_as_string: bool = False
    omit_pending_progress: bool = False
    failed_result: FailedResult = _choice(FailedResult, "absent")
    gzip: bool = False
    chunked: bool = False
    connection_close: bool = False
    text_plain: bool = False
    retry_after_date: bool = False
    bom: bool = False
    xml_prolog: bool = False
    xml_indent: bool = False
    xml_short_empty: bool = False

    # --- building -------------------------------------------------------------------------

    @classmethod
    def named(cls, names: str) -> Dialect:
        """The presets ``names`` lists, comma-separated, combined left to right.

        Where two presets set the same option differently, the later one wins. An empty
        string is ``plain``.
        """
        dialect = cls()
        for name in names.split(","):
            key = name.strip().lower()
            if not key:
                continue
            preset = PRESETS.get(key)
            if preset is None:
                raise ValueError(
                    f"unknown dialect {name.strip()!r}; known: {', '.join(PRESETS)} "
                    "(combine them with commas, e.g. 'go,proxy')"
                )
            dialect = dialect.combine(preset)
        return dialect

    @classmethod
    def from_env(cls) -> Dialect:
        """The dialect ``$ALTCRAFT_FAKE_DIALECT`` names (``plain`` when unset or empty)."""
        try:
            return cls.named(os.environ.get(ENV_VAR, ""))
        except ValueError as exc:
            raise ValueError(f"${ENV_VAR}: {exc}") from None

    def combine(self, other: Dialect) -> Dialect:
        """This dialect with every option ``other`` sets (away from its default) on top."""
        return attrs.evolve(self, **_changed(other))

    def __repr__(self) -> str:
        options = ", ".join(f"{name}={value!r}" for name, value in _changed(self).items())
        return f"Dialect({options})"

    # --- data -----------------------------------------------------------------------------

    def envelope(self, data: Any, error: int, error_text: str) -> dict[str, Any]:
        """The reply envelope around ``data`` (a task's :class:`StatusView` or wire data)."""
        if isinstance(data, StatusView):
            data = self._status(data)
        marshalled: dict[str, Any] = self._marshal(
            {"data": data, "error": error, "error_text": error_text}
        )
        return marshalled

    def webhook(self, view: StatusView, task_id: str) -> dict[str, Any]:
        """The feedback payload: the task's status data plus ``task_id``."""
        payload: dict[str, Any] = self._marshal({**self._status(view), "task_id": task_id})
        return payload

    def reply_body(self, data: Any, error: int, error_text: str, fmt: Format) -> bytes:
        """The bytes of a reply: the envelope, encoded in this dialect's style."""
        return encode_reply(
            self.envelope(data, error, error_text),
            fmt,
            json_compact=self.json_compact,
            xml_prolog=self.xml_prolog,
            xml_indent=self.xml_indent,
            xml_short_empty=self.xml_short_empty,
            bom=self.bom,
        )

    # --- HTTP -----------------------------------------------------------------------------

    def content_type(self, fmt: Format) -> str:
        return "text/plain; charset=utf-8" if self.text_plain else CONTENT_TYPES[fmt]

    def retry_after(self, seconds: float, now: datetime) -> str:
        """The ``Retry-After`` value for a delay of ``seconds`` from ``now`` (aware, real time)."""
        if not self.retry_after_date:
            return f"{seconds:g}"
        when = now + timedelta(seconds=seconds)
        if seconds > 0 and when.microsecond:
            when += timedelta(seconds=1)  # round up: never invite the client back too early
        return email.utils.format_datetime(when.replace(microsecond=0), usegmt=True)

    # --- internals ------------------------------------------------------------------------

    def _status(self, view: StatusView) -> dict[str, Any]:
        data = view.wire()
        data["status"] = self._spell(view.status)
        if self.omit_pending_progress and view.state == "running" and view.progress == 0:
            del data["progress"]
        elif self.progress_as_string:
            data["progress"] = str(view.progress)
        if view.state == "failed" and self.failed_result != "absent":
            data["result"] = {
                "null": None,
                "reason": _FAILURE_REASON,
                "object": {"code": 500, "message": _FAILURE_REASON},
            }[self.failed_result]
        elif view.result is None and self.null_lists:
            data["result"] = []  # Go's nil slice: _marshal writes it as null
        return data

    def _spell(self, status: str) -> str:
        if self.legacy_success and status == "completed":
            status = "success"
        if self.status_case == "upper":
            status = status.upper()
        elif self.status_case == "title":
            status = status.capitalize()
        return f" {status} " if self.status_padding else status

    @property
    def _reshapes(self) -> bool:
        return (
            self.null_lists or self.null_maps or self.omit_empty or self.zero_time or self._retimes
        )

    @property
    def _retimes(self) -> bool:
        return self.time_fraction != "ms" or self.utc_offset is not None

    def _marshal(self, value: Any) -> Any:
        """``value`` with the data options applied (untouched, not copied, when none is on)."""
        return self._walk(value) if self._reshapes else value

    def _walk(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._walk(item) for item in value]
        if not isinstance(value, Mapping):
            return value
        walked: dict[str, Any] = {}
        for key, item in value.items():
            if key in _TIME_KEYS:
                rendered = self._member(self._timestamp(item))
            elif key in _MAP_KEYS:
                rendered = self._member(item)
            else:
                rendered = self._member(self._walk(item))
            if rendered is not _OMIT:
                walked[key] = rendered
        return walked

    def _member(self, value: Any) -> Any:
        """How an object member holding ``value`` is written: as is, ``null`` or left out."""
        if isinstance(value, list) and not value:
            if self.null_lists:
                return None
        elif isinstance(value, Mapping) and not value:
            if self.null_maps:
                return None
        elif not (value is None or value == ""):
            return value
        return _OMIT if self.omit_empty else value

    def _timestamp(self, value: Any) -> Any:
        if value is None or value == "":
            return self._format_time(_GO_ZERO_TIME, local=False) if self.zero_time else value
        if not (self._retimes and isinstance(value, str)):
            return value
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value  # not a timestamp after all: a server would have it as text too
        return self._format_time(moment)

    def _format_time(self, moment: datetime, *, local: bool = True) -> str:
        offset = self.utc_offset if local else None
        moment = moment.astimezone(UTC if offset is None else _zone(offset))
        text = (
            f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
            f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
        )
        if self.time_fraction == "ms":
            text += f".{moment.microsecond // 1000:03d}"
        elif self.time_fraction == "nano":
            text += f".{moment.microsecond * 1000:09d}"
        elif moment.microsecond:
            text += "." + f"{moment.microsecond:06d}".rstrip("0")
        return text + ("Z" if offset is None else offset)  # "+00:00" stays: a zone, not UTC


@functools.cache
def _zone(offset: str) -> timezone:
    match = _OFFSET.fullmatch(offset)
    assert match is not None  # checked when the dialect was built
    sign, hours, minutes = match.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    return timezone(-delta if sign == "-" else delta)


def _changed(dialect: Dialect) -> dict[str, Any]:
    """The options of ``dialect`` that differ from their defaults."""
    return {
        option.name: getattr(dialect, option.name)
        for option in attrs.fields(Dialect)
        if getattr(dialect, option.name) != option.default
    }


_PRESETS: dict[str, Dialect] = {
    # the documentation's examples, byte for byte: what the fake always spoke
    "plain": Dialect(),
    # a Go service: encoding/json with nil slices and maps, omitempty strings, local time.Time
    "go": Dialect(
        null_lists=True,
        null_maps=True,
        omit_empty=True,
        time_fraction="nano",
        utc_offset="+03:00",
        zero_time=True,
        json_compact=True,
    ),
    # nginx in front: gzip, chunked, no keep-alive, a default content type, dated Retry-After
    "proxy": Dialect(
        gzip=True, chunked=True, connection_close=True, text_plain=True, retry_after_date=True
    ),
    # a PHP backend: a BOM from a source file, numbers as strings, ucfirst'ed padded statuses
    "php": Dialect(
        bom=True,
        progress_as_string=True,
        status_case="title",
        status_padding=True,
        failed_result="reason",
    ),
    # an older platform version: "success", no progress until a task starts, result null
    "legacy": Dialect(legacy_success=True, omit_pending_progress=True, failed_result="null"),
    # a Java backend: enum names, a failure object, JAXB-formatted XML
    "java": Dialect(
        status_case="upper",
        failed_result="object",
        xml_prolog=True,
        xml_indent=True,
        xml_short_empty=True,
    ),
}
_PRESETS["all"] = functools.reduce(Dialect.combine, _PRESETS.values())
#: Every named dialect; ``all`` combines the others (java's choices win where they differ).
PRESETS: Mapping[str, Dialect] = MappingProxyType(_PRESETS)
