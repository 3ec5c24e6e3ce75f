"""``python -m vpersona.data.synthetic``: regenerate a SYNTHETIC sample (see the package docstring)."""
import sys

from vpersona.data.synthetic import main

sys.exit(main())
