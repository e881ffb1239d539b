"""``python -m emulator``: the same as the ``emulator`` command."""

import sys

from emulator.cli import main

sys.exit(main())
