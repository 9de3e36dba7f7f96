import sys

from fedsim_app.cli import main

sys.exit(main())
