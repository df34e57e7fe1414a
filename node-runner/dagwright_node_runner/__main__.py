import sys

from dagwright_node_runner.runner import main

sys.exit(main())
