from poller.cli import console

console()
