import sys

from peerlog.cli.main import main

sys.exit(main())
