"""The IMAP side: the connection (TLS, login), search, fetch with PEEK, flag and move by UID,
IDLE, and moving quarantined mail back. Every imapclient, socket and ssl error is translated
here, once, into a MailboxError.

May import: poller.ates, poller.mail, poller.config, poller.errors and imapclient
(import-linter checks it; see pyproject.toml).
"""
