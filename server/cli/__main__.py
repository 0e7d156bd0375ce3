import sys

from skywarden.server.cli.main import main

sys.exit(main())
