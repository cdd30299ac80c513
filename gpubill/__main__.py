import sys

from gpubill.cli import main

sys.exit(main())
