"""`python -m lapakd.cli` runs the CLI (as the `lapakd` script does)."""

import sys

from lapakd.cli import main

sys.exit(main())
