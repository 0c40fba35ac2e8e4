"""Tickscope: a desktop ingestion manager for Zerodha Kite WebSocket captures."""

__version__ = "0.1.0"
