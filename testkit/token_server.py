"""A local OAuth2 authorization server for the tests: HTTPS on 127.0.0.1 (port picked at run
time), served from a thread of the test process, issuing RS256 JWTs that the OAuth2 Dovecot
(testkit.dovecot_oauth2) checks itself.

Token endpoint ``/{tenant}/oauth2/v2.0/token`` (``token_url``), grants:

- ``client_credentials``, the client authenticated by its secret (form or HTTP Basic), or, as
  MSAL sends it for a certificate, by a client assertion signed with the certificate's key;
- Google's JWT bearer grant: an assertion signed with a service account's key, whose ``sub``
  (the mailbox) must be delegated to it.

MSAL reads ``/{tenant}/v2.0/.well-known/openid-configuration`` (authority: ``authority``).
Tokens are flat JWTs, ``typ: JWT``, without ``azp``, with one scope value (``imap``), as
Dovecot 2.3 wants them. Test knobs: ``lifetime`` (seconds a token lives), ``reported_lifetime``
(the ``expires_in`` told to the client, to make a token expire sooner than its holder thinks),
``outage`` (an HTTP status every token request gets), ``omit`` (claims left out of tokens),
``scripted`` (status, headers, raw body: what every token request gets instead) and
``trickle`` (answer a byte at a time, each well within any socket timeout, for a minute).
``token_requests`` counts requests to the token endpoint, ``issued`` the tokens it gave out,
``minted`` keeps them.
"""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from testkit.imapserver import HOST, free_ports

TENANT = "test-tenant"
KID = "k1"
SCOPE_CLAIM = "imap"  # the one scope value Dovecot is configured to want
IMAP_SCOPES = ("https://outlook.office365.com/.default", "https://mail.google.com/")
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400):
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


@dataclass
class Client:
    mailbox: str
    secret: str | None = None
    certificate: x509.Certificate | None = None


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> str:
    """Return KEY as an unencrypted PKCS#8 PEM."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def client_certificate(name: str = "ates-poller") -> tuple[str, x509.Certificate]:
    """Return a self-signed client certificate: its key and itself as one PEM text (what
    [oauth2] client_certificate_file holds), and the certificate to register."""
    key = new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(days=1))
                   .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256()))
    return pem(key) + certificate.public_bytes(serialization.Encoding.PEM).decode(), certificate


class TokenServer:
    """The authorization server; ``start()`` serves it, ``stop()`` takes it down (same port)."""

    def __init__(self, cert: Path, key: Path, tenant: str = TENANT):
        self.cert, self.key, self.tenant = cert, key, tenant
        (self.port,) = free_ports(1)
        self.base = f"https://{HOST}:{self.port}"
        self.authority = f"{self.base}/{tenant}"
        self.token_url = f"{self.authority}/oauth2/v2.0/token"
        self.issuer = f"{self.authority}/v2.0"
        self.signing_key = new_key()
        self.public_key_pem = self.signing_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.lifetime = 3600
        self.reported_lifetime: int | None = None
        self.outage: int | None = None
        self.omit: tuple[str, ...] = ()  # claims left out of the tokens
        self.scripted: tuple[int, dict[str, str], bytes] | None = None
        self.trickle = False
        self.token_requests = 0
        self.issued = 0
        self.minted: list[str] = []  # every token given out, for tests that look for leaks
        self._clients: dict[str, Client] = {}
        self._service_accounts: dict[str, tuple[str, rsa.RSAPublicKey, set[str]]] = {}
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    # -- registrations -------------------------------------------------------------------

    def add_client(self, mailbox: str, *, secret: str | None = None,
                   certificate: x509.Certificate | None = None) -> str:
        """Register a client that gets tokens for MAILBOX; return its client id."""
        client_id = f"app-{secrets.token_hex(4)}"
        with self._lock:
            self._clients[client_id] = Client(mailbox, secret, certificate)
        return client_id

    def add_service_account(self, *mailboxes: str) -> dict[str, str]:
        """Register a service account delegated for MAILBOXES; return its JSON key file's
        content, with token_uri pointing here."""
        key, kid = new_key(), secrets.token_hex(20)
        email = f"poller-{secrets.token_hex(3)}@test-project.iam.gserviceaccount.com"
        with self._lock:
            self._service_accounts[email] = (kid, key.public_key(), set(mailboxes))
        return {"type": "service_account", "project_id": "test-project", "private_key_id": kid,
                "private_key": pem(key), "client_email": email, "client_id": "1234567890",
                "token_uri": self.token_url}

    def reset(self) -> None:
        """Back to the defaults: tokens for an hour, no outage, counts at 0; serving."""
        with self._lock:
            self.token_requests = self.issued = 0
            self.lifetime, self.reported_lifetime, self.outage, self.omit = 3600, None, None, ()
            self.scripted, self.trickle = None, False
        self.start()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> TokenServer:
        if self._httpd is not None:
            return self
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        httpd = _HttpServer((HOST, self.port), _Handler)
        httpd.tls, httpd.authority = context, self
        thread = threading.Thread(target=httpd.serve_forever, name="token-server", daemon=True)
        thread.start()
        self._httpd = httpd
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()

    # -- tokens --------------------------------------------------------------------------

    def mint(self, client_id: str, mailbox: str, lifetime: int | None = None) -> str:
        """Return a signed access token for MAILBOX."""
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": f"{client_id}:{mailbox}", "aud": "imap",
                  "email": mailbox, "scope": SCOPE_CLAIM, "client_id": client_id, "iat": now,
                  "nbf": now, "exp": now + (self.lifetime if lifetime is None else lifetime),
                  "jti": secrets.token_hex(8)}
        for claim in self.omit:
            del claims[claim]
        header = {"typ": "JWT", "alg": "RS256", "kid": KID}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        signature = self.signing_key.sign(signing_input.encode("ascii"), padding.PKCS1v15(),
                                          hashes.SHA256())
        token = f"{signing_input}.{b64url(signature)}"
        with self._lock:
            self.minted.append(token)
        return token

    def answer(self, form: dict[str, str], authorization: str) -> tuple[int, dict[str, object]]:
        """Return the status and JSON body for a token request."""
        with self._lock:
            self.token_requests += 1
        if self.outage:
            return self.outage, {"error": "temporarily_unavailable",
                                 "error_description": "the test server is having an outage"}
        try:
            client_id, mailbox = self._grant(form, authorization)
        except OAuthError as exc:
            return exc.status, {"error": exc.error, "error_description": exc.description}
        with self._lock:
            self.issued += 1
        reported = self.lifetime if self.reported_lifetime is None else self.reported_lifetime
        return 200, {"token_type": "Bearer", "access_token": self.mint(client_id, mailbox),
                     "expires_in": reported, "ext_expires_in": reported,
                     "scope": form.get("scope", "")}

    def _grant(self, form: dict[str, str], authorization: str) -> tuple[str, str]:
        grant = form.get("grant_type")
        if grant == "client_credentials":
            client_id = self._authenticate(form, authorization)
            _scope(form.get("scope", ""))
            return client_id, self._clients[client_id].mailbox
        if grant == JWT_BEARER:
            return self._service_account(form.get("assertion", ""))
        raise OAuthError("unsupported_grant_type", f"grant_type {grant!r} is not supported")

    def _authenticate(self, form: dict[str, str], authorization: str) -> str:
        """Return the id of the client the request authenticates, or raise invalid_client."""
        client_id, secret = form.get("client_id", ""), form.get("client_secret")
        if authorization.startswith("Basic "):
            client_id, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
        client = self._clients.get(client_id)
        if client is None:
            raise OAuthError("invalid_client", f"unknown client {client_id!r}", 401)
        if form.get("client_assertion_type") == ASSERTION_TYPE and client.certificate:
            claims = _verify(form.get("client_assertion", ""), client.certificate.public_key())
            if claims.get("iss") != client_id or claims.get("aud") != self.token_url:
                raise OAuthError("invalid_client", "client assertion for another client", 401)
            return client_id
        if client.secret is None or secret is None or \
                not secrets.compare_digest(secret, client.secret):
            raise OAuthError("invalid_client", "Invalid client secret provided.", 401)
        return client_id

    def _service_account(self, assertion: str) -> tuple[str, str]:
        claims = json.loads(unb64url(assertion.split(".")[1])) if assertion.count(".") == 2 else {}
        account = self._service_accounts.get(claims.get("iss", ""))
        if account is None:
            raise OAuthError("invalid_grant", "Invalid JWT: unknown service account")
        kid, public_key, delegated = account
        if json.loads(unb64url(assertion.split(".")[0])).get("kid") != kid:
            raise OAuthError("invalid_grant", "Invalid JWT Signature.")
        _verify(assertion, public_key)
        _scope(claims.get("scope", ""))
        if claims.get("sub") not in delegated:
            raise OAuthError("unauthorized_client", "Client is unauthorized to retrieve access "
                             "tokens using this method, or client not authorized for any of the "
                             "scopes requested.")
        return claims["iss"], claims["sub"]

    def discovery(self) -> dict[str, object]:
        return {"issuer": self.issuer, "token_endpoint": self.token_url,
                "authorization_endpoint": f"{self.authority}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{self.authority}/oauth2/v2.0/devicecode",
                "token_endpoint_auth_methods_supported": ["client_secret_post",
                                                          "client_secret_basic",
                                                          "private_key_jwt"]}


def _scope(requested: str) -> None:
    wanted = [s for s in requested.split() if s not in ("openid", "profile", "offline_access")]
    if not wanted or any(s not in IMAP_SCOPES for s in wanted):
        raise OAuthError("invalid_scope", f"The provided scope {requested!r} is not valid here.")


def _verify(assertion: str, public_key: object) -> dict[str, object]:
    """Return the claims of a JWT signed (RS256 or PS256) with PUBLIC_KEY's private key."""
    try:
        head, body, signature = assertion.split(".")
        algorithm = json.loads(unb64url(head)).get("alg")
        scheme = padding.PKCS1v15() if algorithm == "RS256" else padding.PSS(
            mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
        public_key.verify(unb64url(signature), f"{head}.{body}".encode("ascii"),  # type: ignore[attr-defined]
                          scheme, hashes.SHA256())
        claims = json.loads(unb64url(body))
    except (ValueError, InvalidSignature):
        raise OAuthError("invalid_grant", "Invalid JWT Signature.") from None
    if not claims.get("exp", 0) > time.time() - 30:
        raise OAuthError("invalid_grant", "Invalid JWT: expired")
    return claims


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    tls: ssl.SSLContext
    authority: TokenServer

    def finish_request(self, request, client_address):  # noqa: ANN001 - socketserver's API
        try:  # the TLS handshake in the request's own thread: a failed one ends only it
            request = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        super().finish_request(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        pass

    def _reply(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        authority = self.server.authority
        if self.path.split("?")[0] == f"/{authority.tenant}/v2.0/.well-known/openid-configuration":
            self._reply(200, authority.discovery())
        else:
            self._reply(404, {"error": "not_found"})

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        authority = self.server.authority
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        if self.path.split("?")[0] != f"/{authority.tenant}/oauth2/v2.0/token":
            self._reply(404, {"error": "not_found"})
            return
        if authority.trickle:
            with authority._lock:
                authority.token_requests += 1
            self._trickle()
            return
        if authority.scripted is not None:
            with authority._lock:
                authority.token_requests += 1
            status, headers, body = authority.scripted
            self.send_response(status)
            for name, value in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            return
        form = {key: values[0] for key, values in parse_qs(raw).items()}
        self._reply(*authority.answer(form, self.headers.get("Authorization", "")))

    def _trickle(self) -> None:
        ends = time.monotonic() + 60
        try:
            self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while time.monotonic() < ends and self.server.authority.trickle:
                self.wfile.write(b"a")
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass
        self.close_connection = True
