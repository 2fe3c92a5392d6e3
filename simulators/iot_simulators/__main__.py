import sys

from iot_simulators.cli import main

sys.exit(main())
