import sys

from notip.cli import main

sys.exit(main())
