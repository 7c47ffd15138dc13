"""``python -m nbbanana`` is the ``nbbanana`` command."""

import sys

from .cli import main

sys.exit(main())
