"""What every app does first, before TensorFlow loads: Ctrl-C then is one line, not a traceback.

Importing this module also tells :mod:`common` to wait: the app reads its options first,
so ``--help`` and a mistyped option are answered at once, and TensorFlow loads when the
app first uses it.

Importing TensorFlow takes seconds and silences file descriptor 2 meanwhile (its start-up
log lines, see ``common.quiet``), so a Ctrl-C in those seconds would print a traceback
from deep inside TensorFlow, or nothing at all. ``main`` takes Ctrl-C back once it runs.
"""

import os
import signal


def stop_quietly_while_starting():
    """Until ``main`` runs, Ctrl-C prints "interrupted; nothing was saved" and exits with 130."""
    terminal = os.dup(2)  # the real stderr, kept while TensorFlow's import silences descriptor 2

    def stop(signum, frame):
        os.write(terminal, b"interrupted; nothing was saved\n")
        os._exit(130)

    signal.signal(signal.SIGINT, stop)
