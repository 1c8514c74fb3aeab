"""Import TensorFlow without its start-up log noise.

TensorFlow's C++ runtime prints oneDNN and CPU-feature notices straight to file
descriptor 2 while it loads, before Python's logging is in charge, and
``TF_CPP_MIN_LOG_LEVEL`` does not silence all of them.  We point descriptor 2 at
a temporary file for the length of the import only, and replay what was caught
if the import fails, so a broken install still shows its real error.

Importing :mod:`common` does this once (notebooks import ``common`` before ``keras``);
the apps do it when they first use TensorFlow, through :class:`import_later`, after their
options are read.
"""

import importlib
import os
import signal
import sys
import tempfile
import threading
import types

# TensorFlow's C++ side logs even harmless fallbacks as errors (e.g. "oneDNN supports
# DT_BOOL only on platforms with AVX-512"); real failures still raise Python exceptions.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def use_tensorflow_backend(environ=os.environ):
    """Set ``KERAS_BACKEND`` to TensorFlow, before Keras is imported; return a one-line note
    saying so if another backend was chosen (None otherwise).

    Every model here is built and trained with TensorFlow (tf.data, tf.distribute), so a
    ``KERAS_BACKEND`` exported for other work (jax, torch) must not stop the apps; it is
    overridden rather than refused, and said, so that nobody believes a run used JAX.

    >>> use_tensorflow_backend({"KERAS_BACKEND": "jax"})
    "note: KERAS_BACKEND='jax' ignored; these apps and lessons run on Keras' TensorFlow backend"
    >>> use_tensorflow_backend({"KERAS_BACKEND": "TensorFlow"}) is None
    True
    """
    chosen = environ.get("KERAS_BACKEND", "")
    environ["KERAS_BACKEND"] = "tensorflow"
    if chosen.strip().lower() in ("", "tensorflow"):
        return None
    return (
        f"note: KERAS_BACKEND={chosen!r} ignored; these apps and lessons run on Keras' "
        "TensorFlow backend"
    )


_note = use_tensorflow_backend()
if _note is not None:
    print(_note, file=sys.stderr)

if "MPLBACKEND" in os.environ:  # Keras imports matplotlib, which refuses a backend it does not know
    try:
        import matplotlib  # noqa: F401
    except ValueError:  # the apps only write PNG files, which need no backend of the user's
        del os.environ["MPLBACKEND"]
        for name in [name for name in sys.modules if name.split(".")[0] == "matplotlib"]:
            del sys.modules[name]  # the failed import's half-made modules: start again clean


# What Ctrl-C does while TensorFlow loads, where one is set (apps/_start.py: exit at once, in
# one line). Inside TensorFlow's import a KeyboardInterrupt can land in a finalizer, where
# Python reports it to the silenced descriptor 2 and goes on: the Ctrl-C would be lost.
ctrl_c_while_loading = None


def import_tensorflow_quietly():
    """Import ``tensorflow`` with descriptor 2 silenced; return the module."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    previous = None
    if ctrl_c_while_loading is not None and threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, ctrl_c_while_loading)
    sys.stderr.flush()
    saved_fd = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as caught:
        os.dup2(caught.fileno(), 2)
        try:
            import tensorflow
        except KeyboardInterrupt:  # Ctrl-C: the caller says so in one line
            raise
        except BaseException:
            os.dup2(saved_fd, 2)
            caught.seek(0)
            sys.stderr.write(caught.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
    # absl's Python logger would repeat warnings about retracing and the like.
    tensorflow.get_logger().setLevel("ERROR")
    return tensorflow


class import_later(types.ModuleType):  # noqa: N801  used like a function: x = import_later("x")
    """A module imported on first use, TensorFlow quietly first: ``keras = import_later("keras")``.

    The apps name their task modules this way so that ``--help`` and a mistyped option are
    answered before the seconds TensorFlow takes to load (nothing is imported until a name
    inside is used, such as ``keras.layers``). Nothing is cached here: every use looks the
    name up in the real module, so a test that patches the module patches what the app sees.
    """

    def __getattr__(self, name):
        if name.startswith("__"):  # copy, pickle and help() probe these: nothing to load
            raise AttributeError(name)
        import_tensorflow_quietly()
        return getattr(importlib.import_module(self.__name__), name)
