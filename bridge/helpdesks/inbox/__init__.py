"""The built-in `inbox` helpdesk: tickets kept in Redis, agents act through an API or the CLI."""

from bridge.helpdesks.inbox.adapter import InboxHelpdesk

__all__ = ["InboxHelpdesk"]
