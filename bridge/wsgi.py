"""WSGI entry point for gunicorn: `gunicorn bridge.wsgi:app` (see the Procfile)."""

from bridge.app import create_app

app = create_app()
