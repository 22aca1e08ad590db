"""The app channel's inbound payload and its pure normalisation into an `InboundMessage`."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field, field_validator

from models.messages import InboundMessage, Sender, check_date


class AppContact(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_id: str = Field(min_length=1, max_length=200)
    name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    email: EmailStr | None = None
    # Only when the app's back-end says it verified these (SMS code, e-mail link) do they
    # merge contacts. The default is no: an app user who types a stranger's phone number
    # must not join the stranger's conversations and receive their replies.
    verified: bool = False


class AppMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_id: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1, max_length=20_000)
    sent_at: AwareDatetime | None = None

    @field_validator("sent_at")
    @classmethod
    def _possible(cls, value: datetime | None) -> datetime | None:
        return check_date(value)


class AppInbound(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact: AppContact
    message: AppMessage


def normalise(payload: AppInbound, *, now: datetime, phone: str | None) -> InboundMessage:
    """Pure: the app's JSON (already validated) → one `InboundMessage`.

    `phone` is the contact's phone already normalised to E.164 (or None if absent/invalid).
    """
    c = payload.contact
    return InboundMessage(
        channel="app",
        external_id=payload.message.external_id,
        sender=Sender(
            external_id=c.external_id,
            name=c.name,
            phone=phone,
            phone_verified=c.verified and phone is not None,
            email=str(c.email).lower() if c.email else None,
            email_verified=c.verified and c.email is not None,
        ),
        text=payload.message.text,
        received_at=now,
        sent_at=payload.message.sent_at,
    )
