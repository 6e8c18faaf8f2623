"""``python -m streams.local_kafka start|status|stop``."""

import sys

from streams.local_kafka.cli import main

raise SystemExit(main(sys.argv[1:]))
