"""``client.relations``: a profile's relation properties."""

from __future__ import annotations

from .._retry import RetryPolicy
from ..models import Match, RelationInfo
from ._base import Caller, read
from ._specs import RELATIONS_GET_COUNTER

__all__ = ["RelationsAPI"]


class RelationsAPI:
    """Profile relations (``relations/get_counter``)."""

    def __init__(self, caller: Caller) -> None:
        self._caller = caller

    async def get_counter(
        self,
        *,
        relation_id: int,
        match: Match,
        resource_id: int | None = None,
        timeout: float | None = None,
        request_timeout: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> RelationInfo:
        """``POST relations/get_counter``: the relation info of the profile ``match`` finds.

        ``resource_id`` narrows email and phone matching to one resource. Raises
        InvalidRequestError (nothing sent), APIError subclasses, TransportError,
        HTTPStatusError, DecodeError.
        """
        result: RelationInfo = await read(
            self._caller,
            RELATIONS_GET_COUNTER,
            {"relation_id": relation_id, "match": match, "resource_id": resource_id},
            timeout=timeout,
            request_timeout=request_timeout,
            retry=retry,
        )
        return result
