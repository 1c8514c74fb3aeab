"""Clean errors for the command-line apps: one line on stderr and exit status 2.

A user mistake (a missing file, a wrong column, too little data) should cost
the user one readable line, not a traceback.  Apps raise :class:`UserError` for
those, and :func:`report_user_errors` turns it into ``app: error: ...`` on
stderr and exit status 2, the status ``argparse`` uses for bad options.  A bug
still shows its traceback, because that is what a bug report needs.
"""

import functools
import os
import signal
import sys
from pathlib import Path

EXIT_USER_ERROR = 2
OUT_OF_MEMORY = "out of memory; try smaller sizes (--units, --batch-size, ...)"
EXIT_TRY_AGAIN = (
    75  # sysexits' EX_TEMPFAIL: a multi-worker run lost a worker; run it again to resume
)


class UserError(ValueError):
    """Bad input from the user: reported as one line on stderr, exit status 2."""


def report_user_errors(main):
    """Decorate ``main(argv=None)``: a :class:`UserError` prints one line and returns 2.

    So do the machine's limits: a disk that cannot be written (``OSError``) and
    memory that runs out (``MemoryError``, TensorFlow's ``ResourceExhaustedError``).
    Ctrl-C prints "interrupted; nothing was saved" and returns 130. A multi-worker
    run that lost a worker says how to resume and returns 75 (try again).
    """

    @functools.wraps(main)
    def wrapper(argv=None):
        program = Path(main.__code__.co_filename).stem
        _restore_ctrl_c()
        try:
            return main(argv)
        except UserError as error:
            return _one_line_error(program, error)
        except KeyboardInterrupt:
            print("interrupted; nothing was saved", file=sys.stderr)
            return 130
        except BrokenPipeError:  # the reader went away (``| head``): nothing to report
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141
        except OSError as error:  # the disk, not the code: full, removed, read-only
            where = f": {error.filename}" if error.filename else ""
            reason = error.strerror or error
            return _one_line_error(program, f"could not read or write{where} ({reason})")
        except MemoryError:
            return _one_line_error(program, OUT_OF_MEMORY)
        except Exception as error:
            if "tensorflow" not in sys.modules:  # it failed before any training: a bug
                raise
            from tensorflow.errors import ResourceExhaustedError

            from common.models.training import ResumeError
            from common.scale.distribute import WorkerLost

            if isinstance(error, WorkerLost):  # a cluster lost a machine: run it again to resume
                print(f"{program}: error: {one_line(error)}", file=sys.stderr)
                return EXIT_TRY_AGAIN
            if isinstance(error, ResumeError):  # checkpoints that do not fit these settings
                return _one_line_error(program, error)
            if isinstance(error, ResourceExhaustedError):
                return _one_line_error(program, OUT_OF_MEMORY)
            raise  # a bug: its traceback is what a bug report needs

    return wrapper


def _one_line_error(program, message):
    print(f"{program}: error: {one_line(message)}", file=sys.stderr)
    return EXIT_USER_ERROR


def _restore_ctrl_c():
    """Give Ctrl-C back to Python (KeyboardInterrupt) once ``main`` runs.

    An app run as a script handles Ctrl-C itself while TensorFlow loads (one
    line, no traceback); from ``main`` on, ``KeyboardInterrupt`` lets ``finally``
    blocks clean up.
    """
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


def one_line(message):
    """``message`` as one line: a file name or a value holding a line break cannot split it.

    >>> one_line("no column 'a\\nb'")
    "no column 'a\\\\nb'"
    """
    text = str(message).replace("\r", "\\r").replace("\n", "\\n")
    # Bytes that are not UTF-8 reach Python as surrogates; show them as \udcff, not a crash.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
