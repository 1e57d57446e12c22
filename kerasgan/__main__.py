"""`python -m kerasgan ...` runs the command line (see `kerasgan/cli.py`)."""

import sys

from kerasgan.cli import main

sys.exit(main())
