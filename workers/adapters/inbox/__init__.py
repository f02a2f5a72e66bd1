"""The built-in `inbox` helpdesk: tickets kept in Redis, agents act through an API or the CLI."""

from workers.adapters.inbox.adapter import InboxHelpdesk

__all__ = ["InboxHelpdesk"]
