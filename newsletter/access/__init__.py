"""Access to the editors' side: API tokens and editors' accounts."""

from newsletter.access.service import Access, Caller, TokenView

__all__ = ["Access", "Caller", "TokenView"]
