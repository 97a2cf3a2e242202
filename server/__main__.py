"""`python -m server` is `barrage serve`."""

import sys

from cli.main import main

sys.exit(main(["serve", *sys.argv[1:]]))
