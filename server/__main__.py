"""`python -m barrage.server` is `barrage serve`."""

import sys

from barrage.cli.main import main

sys.exit(main(["serve", *sys.argv[1:]]))
