"""Profile relations (``relations/get_counter``) and the profile ``Match`` value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from attrs import field, frozen

from .._errors import InvalidRequestError
from ._checks import MAX_ID, check_encodable, non_empty_text

__all__ = ["Match", "NumericProperty", "RelationInfo"]


@frozen
class NumericProperty:
    """A numeric relation property: its top records and the sum of its values."""

    top: Mapping[str, Any] = field(factory=dict)
    sum: float = 0


@frozen
class RelationInfo:
    """A profile's relation info; numeric properties decode to :class:`NumericProperty`.

    Other property values are free-form and kept as sent. XML carries no types, so there they
    arrive as text (``"5"``, ``"true"``) and a one-item list as a single value; only ``sum``
    is typed in both formats.
    """

    profile_id: str = ""
    profile_xxh: str = ""
    props: Mapping[str, NumericProperty | Any] = field(factory=dict)


@frozen
class Match:
    """How to find a profile; build it with one of the class methods.

    Each constructor takes exactly the fields its matching mode needs, so an incomplete or
    contradictory matching (an email *and* a phone, ``custom`` without a value) cannot be built.
    """

    mode: str
    fields: tuple[tuple[str, str | int], ...]

    _MODES: ClassVar[dict[str, tuple[str, ...]]] = {
        "email": ("email",),
        "email_profile": ("email",),
        "phone": ("phone",),
        "profile_id": ("profile_id",),
        "custom": ("field_name", "field_value"),
    }

    def __attrs_post_init__(self) -> None:
        wanted = self._MODES.get(self.mode) if isinstance(self.mode, str) else None
        if wanted is None:
            raise InvalidRequestError(f"unknown matching mode {self.mode!r}")
        pairs = isinstance(self.fields, tuple) and all(
            isinstance(pair, tuple) and len(pair) == 2 for pair in self.fields
        )
        if not pairs or tuple(name for name, _ in self.fields) != wanted:
            raise InvalidRequestError(f"matching {self.mode!r} takes exactly {wanted}")
        # Values are checked here too, so the plain constructor cannot bypass the class methods.
        for name, value in self.fields:
            if name == "email":
                _email(value)
            elif name == "field_value":
                _field_value(value)
            else:
                non_empty_text(name, value, allow_int=True)

    @classmethod
    def email(cls, email: str) -> Match:
        """Match by email in profile data and subscriptions."""
        return cls("email", (("email", _email(email)),))

    @classmethod
    def email_profile(cls, email: str) -> Match:
        """Match by email in profile data only."""
        return cls("email_profile", (("email", _email(email)),))

    @classmethod
    def phone(cls, phone: str) -> Match:
        return cls("phone", (("phone", non_empty_text("phone", phone, allow_int=True)),))

    @classmethod
    def profile_id(cls, profile_id: str) -> Match:
        return cls(
            "profile_id",
            (("profile_id", non_empty_text("profile_id", profile_id, allow_int=True)),),
        )

    @classmethod
    def custom(cls, field_name: str, field_value: str | int) -> Match:
        """Match by a custom profile field (tags: ``"tag-1, tag-2"``)."""
        name = non_empty_text("field_name", field_name, allow_int=True)
        return cls("custom", (("field_name", name), ("field_value", _field_value(field_value))))

    def wire_params(self) -> dict[str, str | int]:
        """The request parameters of this matching: ``matching`` plus its fields."""
        return {"matching": self.mode, **dict(self.fields)}


def _email(value: object) -> str:
    text = non_empty_text("email", value, allow_int=True)
    if "@" not in text:
        raise InvalidRequestError(f"email must contain '@', got {text!r}")
    return text


def _field_value(value: object) -> str | int:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRequestError("field_value must be a str or an int")
    if isinstance(value, str):
        if not value.strip():
            raise InvalidRequestError("field_value must not be empty")
        check_encodable("field_value", value)
    elif not -(2**63) <= value <= MAX_ID:
        raise InvalidRequestError(f"field_value must fit in 64 bits, got {value}")
    return value
