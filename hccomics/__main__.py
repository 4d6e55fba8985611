import sys

from hccomics.cli import main

sys.exit(main())
