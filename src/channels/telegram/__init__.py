"""The Telegram channel (aiogram 3): `normalise` (pure), `adapter` (outbound), `handling`
(apply an update in a unit of work), `webhook` (HTTP routes), `polling` (CLI).

Only the adapter is re-exported: the registry imports this package, and the web layer must
not be pulled in from there (it imports the registry itself).
"""

from channels.telegram.adapter import TelegramChannel

__all__ = ["TelegramChannel"]
