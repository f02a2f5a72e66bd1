"""Botpress HITL bridge: web ingress, the Botpress contract, configuration and Redis storage."""

__version__ = "0.1.0"
