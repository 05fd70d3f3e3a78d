"""Feeds: RSS 2.0, Atom 1.0 and JSON Feed 1.1 of the site, every tag and every author.

render.py turns articles into feed bytes (pure, deterministic); specs.py says what each feed
is; invalidation.py decides which feeds a change touches and stamps new versions; cache.py
keeps rendered bytes per content version; export.py writes them as files; websub.py pings a
hub when feeds change.
"""
