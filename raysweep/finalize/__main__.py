"""``python -m raysweep.finalize``: see :mod:`raysweep.finalize.cli`."""

import sys

from raysweep.finalize.cli import main

sys.exit(main())
