"""A throw-away local demo: private Dovecot, demo directory and mails, one pass, the tickets.

Run through scripts/demo, which prepares the virtual environment first.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from poller.cli import main  # noqa: E402
from testkit.dovecot import Dovecot  # noqa: E402
from testkit.support import PW  # noqa: E402

DEMO = ROOT / "fixtures" / "demo"


def run(config: Path, *args: str) -> int:
    print(f"\n$ poller {' '.join(args)}", flush=True)
    return main(["--config", str(config), *args])


def demo() -> int:
    with tempfile.TemporaryDirectory(prefix="ates-demo-") as tmp, Dovecot() as server:
        account = server.account("alerts")
        mails = sorted(DEMO.glob("*.eml"))
        for path in mails:
            account.append("INBOX", path.read_bytes())
        print(f"Dovecot on {server.host}:{server.port}; {len(mails)} mails loaded into INBOX")
        config = Path(tmp) / "settings.ini"
        config.write_text(
            f"[imap]\nhost = {server.host}\nport = {server.port}\nsecurity = starttls\n"
            f"cafile = {server.cafile}\nusername = {account.username}\n"
            f"password = {account.password}\n"
            f"[ates]\npassword = {PW}\nlocal_organization = Acme MSP\n"
            f"[database]\nurl = sqlite:///{tmp}/tickets.db\n",
            encoding="utf-8",
        )
        config.chmod(0o600)  # it holds passwords
        for kind in ("organizations", "devices", "contacts"):
            run(config, "import", kind, str(DEMO / f"{kind}.csv"))
        code = run(config, "once")
        run(config, "tickets")
        run(config, "messages")
        folders = {name: len(account.messages(name)) for name in account.folders()}
        print(f"\nIMAP folders and message counts: {folders}")
        return code


if __name__ == "__main__":
    raise SystemExit(demo())
