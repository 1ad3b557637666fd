"""What a private test server needs of this machine: free ports on 127.0.0.1, a throw-away CA
and server certificate (openssl), and dying with the process that started it."""

from __future__ import annotations

import ctypes
import os
import random
import secrets
import signal
import socket
import subprocess
from pathlib import Path

HOST = "127.0.0.1"
PORTS_FROM = 20000  # servers' ports: from here up to the kernel's range for outgoing connections


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct TCP ports on 127.0.0.1 that are free right now.

    They lie below the kernel's range for outgoing connections: a server stopped and started
    again on its ports (``restart()``) must not find one taken meanwhile as the local port of
    some client's connection, which happens to a port from that range.
    """
    room = range(PORTS_FROM, max(PORTS_FROM, _ephemeral_low()))
    candidates = random.sample(room, min(200, len(room)))
    sockets: list[socket.socket] = []
    try:
        for port in candidates:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.bind((HOST, port))
            except OSError:
                sock.close()
                continue
            sockets.append(sock)
            if len(sockets) == count:
                break
        while len(sockets) < count:  # no room below the range: let the kernel pick
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _ephemeral_low() -> int:
    """Return the lowest port the kernel gives outgoing connections (Linux's default: 32768)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def die_with_parent() -> None:
    """preexec_fn: have the kernel send SIGTERM to the server if we die first.

    Linux ties this to the thread that started the server, so start it
    from a thread that lives as long as it should (the main thread in tests).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def make_certificates(tls_dir: Path) -> Path:
    """Create a CA and a server certificate for 127.0.0.1/localhost with openssl in tls_dir
    (ca.crt, server.crt, server.key); return the CA certificate's path."""
    cafile = tls_dir / "ca.crt"
    cnf = tls_dir / "openssl.cnf"
    cnf.write_text(
        "[req]\n"
        "distinguished_name = dn\n"
        "prompt = no\n"
        "[dn]\n"
        "CN = ates-poller test CA\n"
        "[v3_ca]\n"
        "basicConstraints = critical, CA:TRUE\n"
        "keyUsage = critical, keyCertSign, cRLSign\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid:always\n"
        "[v3_server]\n"
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature\n"
        "extendedKeyUsage = serverAuth\n"
        "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid:always\n"
    )
    d = tls_dir
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    commands = [
        ["openssl", "req", "-config", cnf, "-x509", *ec, "-keyout", d / "ca.key",
         "-out", cafile, "-days", "3650", "-extensions", "v3_ca",
         "-subj", "/CN=ates-poller test CA"],
        ["openssl", "req", "-config", cnf, "-new", *ec, "-keyout", d / "server.key",
         "-out", d / "server.csr", "-subj", "/CN=127.0.0.1"],
        ["openssl", "x509", "-req", "-in", d / "server.csr", "-CA", cafile,
         "-CAkey", d / "ca.key", "-set_serial", f"0x{secrets.token_hex(8)}",
         "-days", "825", "-extfile", cnf, "-extensions", "v3_server",
         "-out", d / "server.crt"],
    ]  # fmt: skip
    env = {**os.environ, "OPENSSL_CONF": str(cnf)}
    for command in commands:
        result = subprocess.run(
            [str(part) for part in command], capture_output=True, env=env, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(map(str, command))} failed:\n{result.stderr.decode(errors='replace')}"
            )
    (d / "server.key").chmod(0o600)
    (d / "ca.key").chmod(0o600)
    return cafile
