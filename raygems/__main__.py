import sys

from raygems.cli import main

sys.exit(main())
