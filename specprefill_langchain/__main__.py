"""``python -m specprefill_langchain``: the same as the ``specprefill`` console script."""

import sys

from specprefill_langchain.cli import main

if __name__ == "__main__":
    sys.exit(main())
