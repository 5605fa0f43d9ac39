"""``python -m callway``."""

import sys

from callway.cli.main import main

sys.exit(main())
