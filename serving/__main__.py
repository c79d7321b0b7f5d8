"""`python -m serving [--host H] [--port P] [--workers N]`."""

from serving.server import main

main()
