"""Channel adapters, one package per channel (`normalise` pure, `adapter` sends, routes,
optional hooks and workers, and a `plugin.py` that registers them). `channels.base` is the
interface the router knows; `channels.registry` is the list the router loads by name."""
