"""The one place that knows which channels exist. The router loads this module by name
(`CARELINE_CHANNELS`, default `channels.registry`) and reads `PLUGINS`; adding a channel is a
package with a `plugin.py` and a line here."""

from __future__ import annotations

from channels.app.plugin import PLUGIN as APP
from channels.base import ChannelPlugin
from channels.calls.plugin import PLUGIN as CALLS
from channels.email.plugin import PLUGIN as EMAIL
from channels.telegram.plugin import PLUGIN as TELEGRAM
from channels.webchat.plugin import PLUGIN as WEBCHAT

# Route order matters only where paths overlap; none do.
PLUGINS: tuple[ChannelPlugin, ...] = (APP, CALLS, TELEGRAM, EMAIL, WEBCHAT)
