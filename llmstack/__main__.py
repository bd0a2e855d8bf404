import sys

from llmstack.cli import main

sys.exit(main())
