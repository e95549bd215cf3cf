"""``python -m nir`` runs the command line."""

from nir.cli import entry

entry()
