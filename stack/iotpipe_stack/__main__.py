import sys

from iotpipe_stack.cli import main

sys.exit(main())
