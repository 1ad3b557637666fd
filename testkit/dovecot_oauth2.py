"""A private Dovecot that also takes XOAUTH2 and OAUTHBEARER logins, and the local token server
(``tokens``, testkit.token_server) its tokens come from.

Dovecot 2.3's ``oauth2`` passdb checks each token itself (``introspection_mode = local``): the
RS256 signature with the token server's public key, issuer, expiry, the one scope value
``imap``, and that the ``email`` claim names the user logging in. Password logins keep working
for the same users, so fixtures append mail with a password while the code under test logs in
with a token. Both listen on 127.0.0.1 only; the token server uses the same certificate (and
CA, ``cafile``) as IMAPS.

    with OAuth2Dovecot() as server:
        account = server.account()
        client_id = server.tokens.add_client(account.username, secret="s3cret")
"""

from __future__ import annotations

from pathlib import Path

from testkit.dovecot import Dovecot
from testkit.token_server import KID, SCOPE_CLAIM, TokenServer

__all__ = ["OAuth2Dovecot"]


class OAuth2Dovecot(Dovecot):
    """Dovecot with the oauth2 passdb, and its token server (started and stopped with it)."""

    auth_mechanisms = "plain login xoauth2 oauthbearer"

    def __init__(self, workdir: Path | None = None) -> None:
        super().__init__(workdir)
        self.tokens = TokenServer(self.tls_dir / "server.crt", self.tls_dir / "server.key")

    def start(self) -> OAuth2Dovecot:
        super().start()
        self.tokens.start()
        return self

    def close(self) -> None:
        self.tokens.stop()
        super().close()

    def _extra_config(self) -> str:
        # Dovecot looks the key up as "shared/<azp or default>/<alg>/<kid>" in the dict, which
        # fs:posix maps to this file. The auth process (user dovecot as root) reads it.
        keys = self.workdir / "oauth2-keys"
        key_file = keys / "default" / "RS256" / KID
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_bytes(self.tokens.public_key_pem)
        for path in (keys, key_file.parent.parent, key_file.parent):
            path.chmod(0o755)
        key_file.chmod(0o644)
        settings = self.workdir / "dovecot-oauth2.conf.ext"
        settings.write_text(
            "introspection_mode = local\n"
            f"local_validation_key_dict = fs:posix:prefix={keys}/\n"
            f"issuers = {self.tokens.issuer}\n"
            "username_attribute = email\n"
            # Debian's 2.3 wants every configured scope in the token: exactly one value.
            f"scope = {SCOPE_CLAIM}\n"
        )
        settings.chmod(0o644)
        return (
            "passdb {\n"
            "  driver = oauth2\n"
            "  mechanisms = xoauth2 oauthbearer\n"
            f"  args = {settings}\n"
            "}\n"
        )
