import sys

from steward.cli.main import main

sys.exit(main())
