import sys

from protoconform.mockserver.cli import main

sys.exit(main())
