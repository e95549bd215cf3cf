"""``python -m nir`` runs the command line."""

import sys

from nir.cli import main

sys.exit(main())
