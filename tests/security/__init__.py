"""Attacks on the bridge's boundaries, each shown refused (issue 14: safe to expose)."""
