import sys

from net119.cli import main

sys.exit(main())
