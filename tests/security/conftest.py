"""The fast fixtures of tests/unit (fakeredis storage, recording publisher) for this suite too;
integration fixtures (real redis-server, workers, fakes) come from tests/conftest.py."""

from tests.unit.conftest import app, bp, client, ctx, published, runtime, settings, store

__all__ = ["app", "bp", "client", "ctx", "published", "runtime", "settings", "store"]
