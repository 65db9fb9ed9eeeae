"""`python -m fusionbench.cli`."""

import sys

from fusionbench.cli import main

sys.exit(main())
