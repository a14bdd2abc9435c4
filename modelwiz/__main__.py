"""`python -m modelwiz` is the `modelwiz` command."""

import sys

from modelwiz.cli import main

sys.exit(main())
