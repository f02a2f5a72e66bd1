"""Celery workers: the app, the drain loop, event handlers and helpdesk adapters."""
