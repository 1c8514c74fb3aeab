"""What every app does first: Ctrl-C is one line, not a traceback, and TensorFlow waits.

Importing this module tells :mod:`common` to wait: the app reads its options first, so
``--help`` and a mistyped option are answered at once, and TensorFlow loads when the app
first uses it (``common.quiet.import_later``).

Importing TensorFlow takes seconds and silences file descriptor 2 meanwhile (its start-up
log lines, see ``common.quiet``), so a Ctrl-C in those seconds would print a traceback
from deep inside TensorFlow, or nothing at all. Until ``main`` runs, and again for as long
as TensorFlow loads, Ctrl-C therefore ends the app at once with one line.
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
    import common.quiet  # light: common waits for TensorFlow while this module is imported

    common.quiet.ctrl_c_while_loading = stop
