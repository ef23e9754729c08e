"""Blanking the client's secrets out of what the network sent back, however escaped.

A proxy or server that echoes the request puts the token in the reply, and errors quote
replies. The token may come back as sent or escaped differently: backslash escapes (JSON
``\\u0074``, ``\\/``, Python's ``\\x74``, escaped again any number of times), XML and HTML
character references (``&#x74;``, ``&#116;``, ``&amp;``, escaped again as ``&amp;#116;``),
percent-encoding, any mix of these character by character, or UTF-16/32. Each secret is one
pattern whose every character accepts every form; all alternatives start with a literal byte,
which lets the regex engine skip ahead quickly.

The scrubber keeps only the compiled patterns' ``sub`` methods, whose ``repr`` does not show
the pattern, in slots behind a ``repr`` of its own: nothing of it shows the secrets in a
rendered traceback.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

from ._errors import AltcraftError
from ._secret import Secret

__all__ = ["Scrubber"]

_Sub = Callable[[bytes, bytes], bytes]

#: The wide encodings a reply may echo a secret in (whole, not character by character).
_WIDE = ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")


class Scrubber:
    """Blanks the secrets out of reply bytes, text, headers and the errors quoting them."""

    __slots__ = ("_count", "_subs")

    def __init__(self, secrets: Iterable[Secret | None]) -> None:
        unique = sorted(
            {secret for secret in secrets if secret is not None and secret.reveal()},
            key=lambda secret: len(secret.reveal()),
            reverse=True,  # a longer secret first: one that contains another is blanked whole
        )
        self._count = len(unique)
        # no local holds a secret or a pattern (whose repr shows it), only the patterns' subs
        wide = (re.escape(s.reveal().encode(codec)) for s in unique for codec in _WIDE)
        forms = (b"".join(map(_escaped_char, secret.reveal())) for secret in unique)
        self._subs: tuple[_Sub, ...] = (
            tuple(re.compile(source).sub for source in (b"|".join(wide), *forms)) if unique else ()
        )

    def __repr__(self) -> str:
        return f"<Scrubber of {self._count} secrets>"

    def __bool__(self) -> bool:
        return bool(self._subs)

    def data(self, data: bytes) -> bytes:
        for sub in self._subs:
            data = sub(b"***", data)
        return data

    def text(self, text: str) -> str:
        raw = text.encode("utf-8", "surrogatepass")
        scrubbed = self.data(raw)
        return text if scrubbed == raw else scrubbed.decode("utf-8", "surrogatepass")

    def headers(self, headers: Mapping[str, str]) -> Mapping[str, str]:
        """``headers`` itself when no value holds a secret, else a scrubbed copy."""
        scrubbed = {name: self.text(value) for name, value in headers.items()}
        return headers if scrubbed == dict(headers) else scrubbed

    def error(self, error: AltcraftError) -> None:
        """Scrub the parts of an error that come from the reply, in place, and their quotes
        in its message (the SDK's own words, the endpoint name say, are left alone). What no
        escaping explains, a secret split by XML markup, shows whole in decoded text."""
        for name in ("excerpt", "error_text"):
            value = getattr(error, name, None)
            if not isinstance(value, str) or not value:
                continue
            clean = self.text(value)
            if clean == value:
                continue
            setattr(error, name, clean)
            error.args = tuple(
                arg.replace(repr(value), repr(clean)).replace(value, clean)
                if isinstance(arg, str)
                else arg
                for arg in error.args
            )
        headers = getattr(error, "headers", None)
        if headers:
            error.headers = dict(self.headers(headers))  # type: ignore[attr-defined]


_CONTROL_ESCAPES = {"\b": b"b", "\f": b"f", "\n": b"n", "\r": b"r", "\t": b"t"}
_XML_NAMES = {"&": b"amp", "<": b"lt", ">": b"gt", '"': b"quot", "'": b"apos"}


def _escaped_char(char: str) -> bytes:
    """A regex matching ``char`` in any of the forms :class:`Scrubber` names.

    The character as sent comes last: ``\\`` and ``&`` begin their own escaped forms, and a
    secret's last character must take the whole of ``\\\\`` or ``&amp;``, not leave a lone
    backslash that escapes the quote after it (the reply would no longer parse).
    """
    code = ord(char)
    raw = char.encode()
    if code < 0x10000:
        escapes = [rb"(?i:u%04x)" % code]
    else:  # JSON writes it as a surrogate pair
        high, low = divmod(code - 0x10000, 0x400)
        escapes = [rb"(?i:u%04x)\\+(?i:u%04x)" % (0xD800 + high, 0xDC00 + low)]
    escapes += [rb"(?i:U%08x)" % code, re.escape(raw)]  # \U0001f600, and \/ \" \' \\
    if code < 0x100:
        escapes.append(rb"(?i:x%02x)" % code)
    if char in _CONTROL_ESCAPES:
        escapes.append(_CONTROL_ESCAPES[char])
    references = [rb"#(?i:x)0*(?i:%x);" % code, rb"#0*%d;" % code]
    if char in _XML_NAMES:
        references.append(_XML_NAMES[char] + b";")
    forms = [
        rb"\\\\*(?:" + b"|".join(escapes) + b")",  # one or more backslashes
        rb"&(?:amp;)*(?:" + b"|".join(references) + b")",
        b"".join(rb"%%(?i:%02x)" % byte for byte in raw),
        re.escape(raw),
    ]
    return b"(?:" + b"|".join(forms) + b")"
