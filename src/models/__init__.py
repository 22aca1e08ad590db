"""Tables (SQLAlchemy 2) and value objects. No business logic lives here."""

from models.agent import Agent
from models.base import Base
from models.callback import CallbackRequest as CallbackRequest  # re-export
from models.contact import Contact, ContactIdentity, ErasedIdentity
from models.conversation import Assignment, Conversation
from models.desk import CannedReply, ReadAudit, SearchDocument
from models.event import Event
from models.message import Attachment, Message
from models.outbox import OutboxItem
from models.paging import CrisisWatch, Page
from models.queue import Queue
from models.sla import SlaTimer
from models.staff_auth import StaffCredential, StaffInvitation, StaffSession

__all__ = [
    "Agent",
    "Assignment",
    "Attachment",
    "Base",
    "CannedReply",
    "Contact",
    "ContactIdentity",
    "Conversation",
    "CrisisWatch",
    "ErasedIdentity",
    "Event",
    "Message",
    "OutboxItem",
    "Page",
    "Queue",
    "ReadAudit",
    "SearchDocument",
    "SlaTimer",
    "StaffCredential",
    "StaffInvitation",
    "StaffSession",
]
