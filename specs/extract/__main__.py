"""``python -m protoconform.specs.extract --seeds DIR --out DIR``."""

import sys

from protoconform.specs.extract.command import main

sys.exit(main())
