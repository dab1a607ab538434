"""`python -m ikc`: see ikc.cli."""
import sys

from .cli import main

sys.exit(main())
