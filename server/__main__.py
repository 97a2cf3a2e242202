"""`python -m server` is `barrage serve`."""

import sys

from clients.cli import main

sys.exit(main(["serve", *sys.argv[1:]]))
