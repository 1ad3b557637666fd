"""The empty pass's floor: what any cron pass pays, a fresh interpreter that imports imapclient,
logs in, SELECTs a folder, SEARCHes and logs out.

    python bench/login_floor.py HOST PORT USER PASSWORD FOLDER
"""

import sys

from imapclient import IMAPClient

host, port, user, password, folder = sys.argv[1:]
client = IMAPClient(host, port=int(port), ssl=False, timeout=60)
client.login(user, password)
client.select_folder(folder)
client.search("UNSEEN")
client.logout()
