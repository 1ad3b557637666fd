"""ates-poller: turns ATES-token alert mail into tickets."""

__version__ = "0.1.0"
