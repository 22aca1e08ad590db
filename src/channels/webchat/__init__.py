"""The web chat channel: visitor tokens (`tokens`), the socket hub (`hub`), the outbound
adapter (`adapter`), the visitor's feed (`feed`) and the HTTP/WebSocket routes (`routes`),
plus the embeddable `static/widget.js` and a demo page.

Only the adapter is re-exported: the registry imports this package, and the web layer must
not be pulled in from there.
"""

from channels.webchat.adapter import WebchatChannel, WebchatConfig

__all__ = ["WebchatChannel", "WebchatConfig"]
