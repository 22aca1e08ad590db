"""Email channel: raw-MIME webhook and IMAP polling in, SMTP out.

Modules: `parse` (raw bytes → `ParsedEmail`, pure), `text` (HTML → text, quote and signature
stripping, pure), `normalise` (→ `InboundMessage`, pure), `tokens` (conversation token,
subjects), `store` (attachment file store), `receive` (threading + ingest, in the caller's
unit of work), `webhook` (`POST /webhooks/email`), `imap` (mailbox poller), `compose` and
`adapter` (`EmailChannel`, SMTP out). Import the webhook and poller modules explicitly; this
package only exposes the adapter, so importing the registry stays light.
"""

from channels.email.adapter import EmailChannel

__all__ = ["EmailChannel"]
