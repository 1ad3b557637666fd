"""Names that cannot collide: folder names that differ only in case are refused at load
(Microsoft 365 and Gmail fold case), and a move into a folder the server knows as the watched
one under another name is refused by asking the server (UIDVALIDITY, UIDNEXT and count),
instead of mail coming back as new at every pass. The private Dovecot, where a folder linked
under a second name stands for a server that folds case or aliases names."""

from __future__ import annotations

import os

import pytest

from poller.config import load_settings
from poller.errors import ConfigError
from testkit.support import alert_mail, poller, poller_json, token, write_settings


@pytest.mark.parametrize(("watched", "target"), [("Alerts", "alerts"), ("INBOX", "inbox"),
                                                 ("Kaseya/Alerts", "KASEYA/alerts/")])
def test_a_target_folder_differing_only_in_case_is_refused_at_load(tmp_path, watched, target):
    config = write_settings(tmp_path, None, imap={"folder": watched},
                            mailbox={"on_success": "move", "processed_folder": target})
    with pytest.raises(ConfigError, match="processed_folder: must differ from .* in more than "
                                          "case"):
        load_settings(config)


def test_a_move_into_the_watched_folder_under_another_name_is_refused(tmp_path, dovecot,
                                                                       capsys):
    account = dovecot.account()
    account.append("Alerts", alert_mail(tok=token(AlertID="Kaseya:1")))
    maildir = dovecot.mail_dir / account.username / "Maildir"
    os.symlink(maildir / "Alerts", maildir / "Done")  # one folder, two names
    config = write_settings(tmp_path, account, imap={"folder": "Alerts"},
                            mailbox={"on_success": "move", "processed_folder": "Done"})
    assert poller(config, "once") == 1
    assert "that is the watched folder itself" in capsys.readouterr().err
    for _ in range(2):
        poller(config, "once")
    assert [m["outcome"] for m in poller_json(config, capsys, "messages")] == ["created"]
    assert len(account.messages("Alerts")) == 1
    ((ticket,),) = [poller_json(config, capsys, "tickets")]
    assert ticket["occurrences"] == 1
