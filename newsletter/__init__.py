"""Feeds and email digests for a news publication.

Articles, with their tags and authors, are stored once; from them the service serves RSS,
Atom and JSON feeds, and on the schedules editors set it emails digests of recent posts to
subscribers, recording every delivery in a ledger.

    from newsletter import config, services
    built = services.build(config.load("config.toml"))
    built.digests.send_now("digest")          # compose an issue and write its ledger
    await built.digests.deliver(run_id)       # send it

The command line (`newsletter --help`) and the HTTP service (`newsletter serve`) are thin
entry points over the same use cases; docs/architecture.md draws the layers.
"""
