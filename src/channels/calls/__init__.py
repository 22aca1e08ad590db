"""The `calls` channel: call logs from telephony providers, never audio.

Parsers are pure (`twilio.normalise`, `generic.normalise`); the webhook routes live in
`channels.calls.webhooks` (import it explicitly: it pulls in the web layer). A call log cannot
carry a reply, so this channel has no sending adapter: agents ring customers back, which
`router.flows.callbacks` tracks.
"""

from channels.calls import generic, twilio
from channels.calls.common import CallStatus, Direction, caller

__all__ = ["CallStatus", "Direction", "caller", "generic", "twilio"]
