"""The browser view of the feeds: feed.xsl (beside this module) with the site's name,
description and address filled in. RSS and Atom feeds name it in an xml-stylesheet
instruction (render.py), the web serves it at /feed.xsl (web/feeds.py) and the static export
writes it beside /feed.rss (export.py).

Browsers run XSLT 1.0 only; the stylesheet shows the feed's title, what a feed is and how to
subscribe, and the items with their links and dates, in the site's look. Feed readers
ignore it, so what they get does not change.
"""

from __future__ import annotations

import functools
from pathlib import Path

from lxml import etree

from newsletter.config import Settings
from newsletter.feeds.render import STYLESHEET
from newsletter.text import xml_safe

PATH = "/" + STYLESHEET
CONTENT_TYPE = "text/xsl; charset=utf-8"
_TEMPLATE = Path(__file__).with_name(STYLESHEET)
_XSL = "{http://www.w3.org/1999/XSL/Transform}"


@functools.cache
def _template() -> bytes:
    return _TEMPLATE.read_bytes()


def stylesheet(settings: Settings) -> bytes:
    """feed.xsl for this site: the same settings give the same bytes."""
    root = etree.fromstring(_template())
    values = {
        "site-title": settings.site.title,
        "site-description": settings.site.description,
        "base-url": settings.base_url,
    }
    for variable in root.iter(f"{_XSL}variable"):
        name = variable.get("name")
        if name in values:
            variable.text = xml_safe(values[name])
    # the tree, not the root alone: the comment before the root says what the file is
    out: bytes = etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")
    return out + b"\n"
