"""Domain errors carry their HTTP status; one handler renders RFC 9457 problem+json."""

from __future__ import annotations


class RouterError(Exception):
    status_code = 400
    title = "Bad request"

    def __init__(
        self, detail: str, *, status_code: int | None = None, extra: dict[str, object] | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code
        # RFC 9457 extension members of the problem (e.g. where a conversation moved).
        self.extra = extra or {}

    @property
    def type(self) -> str:
        return f"https://careline.dev/problems/{type(self).__name__}"


class NotFound(RouterError):
    status_code = 404
    title = "Not found"


class ConversationNotFound(NotFound):
    title = "Conversation not found"


class ConversationMoved(RouterError):
    """The caller held this conversation until routing moved it out of their reach."""

    status_code = 410
    title = "Conversation moved"


class Unauthorized(RouterError):
    status_code = 401
    title = "Unauthorized"


class Forbidden(RouterError):
    status_code = 403
    title = "Forbidden"


class Conflict(RouterError):
    status_code = 409
    title = "Conflict"


class ConversationClosed(Conflict):
    title = "Conversation closed"


class InvalidInput(RouterError):
    status_code = 422
    title = "Invalid input"


class PayloadTooLarge(RouterError):
    status_code = 413
    title = "Payload too large"


class Unavailable(RouterError):
    status_code = 503
    title = "Service unavailable"
