"""The one shape of every error answer the server sends, apart from the modules that raise it."""

from __future__ import annotations

from typing import Any

from mlops_contract.validation import FieldError

MAX_LISTED_ERRORS = 100  # a 422 lists this many errors; `error_count` has the total


class ApiError(Exception):
    """An answer other than 200; `body()` shapes every error body the server sends."""

    def __init__(
        self,
        status: int,
        detail: str,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers

    def body(self) -> dict:
        body: dict[str, Any] = {"detail": self.detail}
        if self.errors is not None:
            listed = self.errors[:MAX_LISTED_ERRORS]
            body["errors"] = [{"field": e.field, "message": e.message} for e in listed]
            body["error_count"] = len(self.errors)
        return body
