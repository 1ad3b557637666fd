"""The exit codes of every command, defined here once.

0 done (also: `once` found another pass running and left it alone; `serve` stopped by SIGTERM
or SIGINT); 1 done, but some mail's mailbox step is left for the next pass (`status`: the
server refuses some mailbox steps); 2 bad settings, arguments or import file (`requeue`: a
Message-ID is not in the quarantine; `ticket`: no such ticket); 3 mailbox or database
unavailable, or login/certificate refused, or the OAuth2 token endpoint refused the client, or
the reading helper cannot start (`check`: getting a token, connecting or logging in failed;
`status`: the mailbox could not be looked at); 4 unexpected error (a bug: please report it
with the log); 5 `status`: no good pass for longer than max_age; 6 `check`: a folder cannot be
selected or created; 7 `check`: the database, lock file or metrics folder is not writable;
8 `check --webhook-ping`: the webhook receiver did not take the ping.
"""

EXIT_OK = 0
EXIT_PENDING = 1
EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 3
EXIT_BUG = 4
EXIT_STALE = 5
EXIT_FOLDERS = 6
EXIT_LOCAL = 7
EXIT_WEBHOOK = 8

# `check`: the exit code of the first part that failed
CHECK_EXIT = {"oauth2": EXIT_UNAVAILABLE, "imap": EXIT_UNAVAILABLE, "folders": EXIT_FOLDERS,
              "database": EXIT_LOCAL, "files": EXIT_LOCAL, "webhook": EXIT_WEBHOOK}
