"""A read-only web view of the store (`poller web`, the [web] extra): tickets, the quarantine,
undelivered events and charts of alert activity.

May import: poller.store's read-only queries, poller.config, poller.ates (its constants),
starlette, jinja2 and uvicorn. It writes nothing: the database is opened read-only.
"""
