"""``python -m raysweep.synth``: see :mod:`raysweep.synth.cli`."""

import sys

from raysweep.synth.cli import main

sys.exit(main())
