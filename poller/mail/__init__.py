"""Raw RFC 822 bytes → a decoded message: subject, body texts, HTML rendered as text,
attachments, and the mail's fingerprint; text made fit for a log line (poller.mail.printable).
Pure: no I/O, and nothing of ATES.

May import: the standard library and mail-parser (import-linter checks it; see pyproject.toml).
"""
