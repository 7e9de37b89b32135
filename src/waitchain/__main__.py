"""`python -m waitchain`: the command line (Ctrl-C exits 130 quietly at any moment)."""

import os
import signal
import sys

signal.signal(signal.SIGINT, lambda signum, frame: os._exit(130))  # until entry takes over

from .entry import main  # noqa: E402

sys.exit(main())
