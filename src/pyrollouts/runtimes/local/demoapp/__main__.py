"""``python -m pyrollouts.runtimes.local.demoapp``: run the demo app."""

from . import main

main()
