"""Browser tests: the `browser` and `page` fixtures of tests/support/browser.py."""

from tests.support.browser import browser, page

__all__ = ["browser", "page"]
