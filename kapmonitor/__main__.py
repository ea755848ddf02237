"""``python -m kapmonitor`` runs the command line."""

import sys

from kapmonitor.cli import main

if __name__ == "__main__":
    sys.exit(main())
