"""The IMAP side: the connection (TLS, login with a password or an OAuth2 token), search, fetch
with PEEK, flag and move by UID, IDLE, and moving quarantined mail back; the OAuth2 token
providers and the cache in front of them. Every imapclient, socket and ssl error, and every
answer of a token endpoint, is translated here, once, into a MailboxError.

May import: poller.ates, poller.mail, poller.config, poller.errors, imapclient, the standard
library's HTTP client, and msal or google-auth (optional extras, imported only by the provider
that needs them; import-linter checks the layers, see pyproject.toml).
"""

# The response code of a login the server could not check now (RFC 5530; a token validation
# backend that is down, say): transient, so translated() makes it MailboxUnavailable.
UNAVAILABLE = "[UNAVAILABLE]"
