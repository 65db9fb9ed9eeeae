"""`python -m fusionbench.cli`."""

import sys

from fusionbench.cli.main import main

sys.exit(main())
