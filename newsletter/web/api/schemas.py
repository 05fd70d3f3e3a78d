"""What every /api/v1 module shares: the shapes of refusals (documented once, so the
OpenAPI schema has one name for each), the pagination parameters, and answering a use
case's refusal of a query or path parameter the way FastAPI answers its own."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

from newsletter.errors import InvalidInputError

Responses = dict[int | str, dict[str, Any]]


class Problem(BaseModel):
    """A refusal in words: 404 (no such thing), 409 (exists already or not now)."""

    detail: str


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Invalid(BaseModel):
    """422: each error names where the field was sent and what is wrong with it."""

    detail: list[FieldError]


NOT_FOUND: Responses = {404: {"model": Problem, "description": "No such thing"}}
EXISTS: Responses = {409: {"model": Problem, "description": "Its slug or key is taken"}}
INVALID: Responses = {
    422: {"model": Invalid, "description": "Refused: `loc` names the field, `msg` the reason"}
}
# FastAPI's own answer to a body it cannot decode (bytes that are not UTF-8)
UNREADABLE: Responses = {400: {"model": Problem, "description": "The body could not be read"}}

Cursor = Annotated[
    str | None,
    Query(
        max_length=600,
        description="`next_cursor` of the previous page; leave it out for the first page.",
    ),
]


@contextmanager
def sent_in(location: str, *fields: str) -> Iterator[None]:
    """A use case's InvalidInputError about one of `fields`, sent as a query or path
    parameter, answered as FastAPI answers its own (422, loc [location, field])."""
    try:
        yield
    except InvalidInputError as exc:
        if exc.field not in fields:
            raise
        error = {"type": "value_error", "loc": (location, exc.field), "msg": exc.reason}
        raise RequestValidationError([error]) from None


def query_error(exc: InvalidInputError) -> RequestValidationError:
    """A use case's refusal of a query parameter as FastAPI answers its own."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", exc.field or "query"), "msg": exc.reason}]
    )
