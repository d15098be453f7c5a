"""``python -m hinas.book build --profile quick`` (what ``make book`` runs)."""

import sys

from hinas.book.build import main

sys.exit(main())
