"""Request bodies in, reply bodies out, for the fake server.

XML goes through ``xmltodict`` on purpose: the SDK has its own ElementTree-based codec, and a
fake that shared it would hide any bug in it. Two independent implementations talking to each
other cross-check both. JSON uses the stdlib ``json`` for the same reason.

Requests: ``application/json`` is a JSON object; ``application/xml`` (or ``text/xml``) is an
``<xml>`` root whose children become parameters (text stays text; the endpoint converts).
Replies: the envelope ``{"data", "error", "error_text"}``; in XML a list becomes repeated
elements, booleans ``true``/``false`` and None an empty element, as in the documentation. The
keyword options of :func:`encode_reply` are the byte-level choices of a dialect (see
:mod:`._dialects`); without them the bytes are the documentation's.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Mapping
from typing import Any, Literal

import xmltodict

__all__ = ["CONTENT_TYPES", "Format", "WireError", "encode_reply", "read_request", "reply_format"]

Format = Literal["json", "xml"]
CONTENT_TYPES: dict[Format, str] = {"json": "application/json", "xml": "application/xml"}
_XML_TYPES = frozenset({"application/xml", "text/xml"})


class WireError(ValueError):
    """The request body cannot be read; answered as error 400."""


def read_request(body: bytes, content_type: str) -> dict[str, Any]:
    """The request's parameters as a dict (entity expansion disabled for XML)."""
    if content_type in _XML_TYPES:
        try:
            document = xmltodict.parse(body, disable_entities=True)
        except Exception as exc:  # expat errors, "entities are disabled", bad encodings
            raise WireError(f"invalid XML request body: {exc}") from None
        if not isinstance(document, dict) or list(document) != ["xml"]:
            raise WireError("an XML request must have the root element <xml>")
        params = document["xml"]
        return dict(params) if isinstance(params, dict) else {}
    if content_type == "application/json":
        try:
            params = json.loads(body or b"{}")
        except ValueError as exc:
            raise WireError(f"invalid JSON request body: {exc}") from None
        if not isinstance(params, dict):
            raise WireError("a JSON request body must be an object")
        return params
    raise WireError(
        f"unsupported Content-Type {content_type!r}; use application/json or application/xml"
    )


def reply_format(params: dict[str, Any]) -> Format:
    """The reply format a request asks for with ``format`` (JSON when absent)."""
    value = params.get("format")
    if value is None or value == "json":
        return "json"
    if value == "xml":
        return "xml"
    raise WireError(f"format must be 'json' or 'xml', got {value!r}")


def encode_reply(
    envelope: Mapping[str, Any],
    fmt: Format,
    *,
    json_compact: bool = False,
    xml_prolog: bool = False,
    xml_indent: bool = False,
    xml_short_empty: bool = False,
    bom: bool = False,
) -> bytes:
    """The bytes of a reply envelope.

    ``json_compact`` drops the spaces after separators; ``xml_prolog`` starts with
    ``<?xml version="1.0" encoding="UTF-8"?>``, ``xml_indent`` puts one element per line
    indented by two spaces, ``xml_short_empty`` writes ``<x/>``; ``bom`` prepends a UTF-8 BOM.
    """
    if fmt == "json":
        separators = (",", ":") if json_compact else None
        text = json.dumps(envelope, ensure_ascii=False, separators=separators)
    else:
        text = xmltodict.unparse(
            {"xml": envelope},
            full_document=xml_prolog,
            encoding="UTF-8",
            pretty=xml_indent,
            indent="  ",
            short_empty_elements=xml_short_empty,
        )
    return (codecs.BOM_UTF8 if bom else b"") + text.encode()
