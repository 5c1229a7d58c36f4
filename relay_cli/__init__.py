"""relay: see what a SignalWire RELAY account is doing, live, from a recording, or from a payload."""

__version__ = "0.1.0"
