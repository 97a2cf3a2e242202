"""`python -m barrage.cli` is `barrage`."""

import sys

from barrage.cli.main import main

sys.exit(main())
