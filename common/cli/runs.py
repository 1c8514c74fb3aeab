"""Run folders: where a run is saved, written whole or not at all, and loaded again.

Also the start and end of a run under a distribution strategy, because a
multi-worker run keeps its checkpoints beside its run folder.
"""

import argparse
import contextlib
import errno
import itertools
import json
import math
import os
import shutil
import signal
import tempfile
import zipfile
from datetime import datetime
from pathlib import Path

from common.cli.errors import UserError
from common.cli.options import positive_float
from common.quiet import import_later

# Loaded on first use, after the app has read its options (see common.quiet.import_later).
distribute = import_later("common.scale.distribute")
keras = import_later("keras")


def start_distribution(config):
    """The :class:`common.scale.distribute.Distribution` for ``config``; call before TensorFlow runs anything."""
    if config.load is not None:  # a saved model is used and nothing is trained: one device
        return distribute.setup("none")
    backup = backup_folder(config.out)
    if config.distribute == "multiworker" and (
        backup.is_symlink() or (backup.exists() and not backup.is_dir())
    ):  # checkpoints go only into a real folder of their own
        raise UserError(f"--out {config.out}: {backup} exists and is not a folder of checkpoints")
    wait = 300.0  # seconds for every worker of a cluster to start
    if config.distribute == "multiworker":
        try:  # NaN would wait for ever, like no limit at all
            wait = positive_float(os.environ.get("RNN_WORKSHOP_WAIT_SECONDS", "300"))
        except argparse.ArgumentTypeError as error:
            raise UserError(f"RNN_WORKSHOP_WAIT_SECONDS: {error}") from None
    try:
        distribution = distribute.setup(
            config.distribute,
            config.mixed_precision,
            backup=backup,
            fingerprint=config.fingerprint(),
            wait_seconds=wait,
        )
    except ValueError as error:
        raise UserError(f"--distribute {config.distribute}: {error}") from None
    if distribution.workers > 1:  # TensorFlow's cluster takes SIGTERM over; stop cleanly instead
        _raise_on_signals()
    return distribution


def finish_worker(distribution):
    """End a worker other than the chief: it trained its share, and the chief saves the run. Returns 0."""
    print(
        f"\nWorker {distribution.worker_index} of {distribution.workers}: training done; "
        "worker 0 saves the run"
    )
    distribution.finish()  # waits for the chief's run folder, then deletes the checkpoints
    return 0


def save_run(config, distribution, save, *args):
    """Save the run with ``save(folder, *args)`` into ``config.out``, whole or not at all.

    On a cluster only the chief (worker 0) saves; every other worker waits for the chief's
    run (see :func:`finish_worker`) instead. Returns True where this process saved the run,
    so an app says "Saved ..." only there.
    """
    if not distribution.is_chief:
        finish_worker(distribution)
        return False
    with run_folder(config.out, config.overwrite) as folder:
        save(folder, *args)
    distribution.finish()
    return True


def backup_folder(out):
    """Where a multi-worker run keeps its per-epoch checkpoints: ``<out>.backup`` beside the run."""
    out = Path(out)
    return out.with_name(out.name + ".backup")


def save_model_atomically(model, path):
    """Save a ``.keras`` file so an interrupted save never leaves a half-written model.

    Keras writes to a temporary file beside ``path``; only a complete file
    replaces what was there.
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(suffix=".keras", dir=path.parent)
    os.close(handle)
    try:
        model.save(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


RUN_MARKER = ".rnn-workshop-run"  # written by run_folder into every run: its app and its files
MARKER_KIND = "rnn-workshop run"  # the marker's first key, so no other program's file passes for it
LITTER = {".DS_Store", "Thumbs.db", "desktop.ini"}  # a file browser's own: not the user's work


def saved_by(directory):
    """The app that saved the run in ``directory``, or None: a folder counts as a saved run
    only if it holds the marker that :func:`run_folder` writes (a user's own folder with a
    ``config.json`` of its own never does, so ``--overwrite`` never deletes it)."""
    marker = _marker(directory)
    return None if marker is None else marker[0]


def _marker(directory):
    """``(app, files)`` from the marker in ``directory``: ``files`` maps each file the run wrote
    to its size, or is None for a marker written before the list was kept (the app's name
    alone). None for no marker, or one that is not ours (a link is not: ours is a file)."""
    try:
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
        with open(os.open(Path(directory) / RUN_MARKER, flags), "rb") as file:
            data = file.read(64 << 20)
        text = data.decode("utf-8")
    except (OSError, ValueError):
        return None
    if text.strip().isidentifier():  # the earlier marker: the app's name only
        return text.strip(), None
    try:
        marker = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not (isinstance(marker, dict) and marker.get("kind") == MARKER_KIND):
        return None
    app, files = marker.get("app"), marker.get("files")
    if not (isinstance(app, str) and app.isidentifier() and isinstance(files, dict)):
        return None
    if not all(type(size) is int for size in files.values()):
        return None
    return app, files


def _files_in(folder):
    """Every file in ``folder`` and its sub-folders, but the marker, as ``{relative path: size}``.

    Links are listed, never followed; a folder that cannot be read raises ``OSError``.
    """
    folder = Path(folder)

    def fail(error):
        raise error

    found = {}
    for root, folders, names in os.walk(folder, onerror=fail):
        for name in folders + names:
            path = Path(root, name)
            if name in folders and not path.is_symlink():
                continue  # a real folder: walked into next
            relative = path.relative_to(folder).as_posix()
            if relative != RUN_MARKER:
                found[relative] = os.lstat(path).st_size
    return found


def _write_marker(folder, app):
    """Mark ``folder`` as a run of ``app``, listing the files in it now.

    See :func:`changed_since_saved`, which compares the list with what is there later.
    """
    marker = {"kind": MARKER_KIND, "app": app, "files": _files_in(folder)}
    (Path(folder) / RUN_MARKER).write_text(json.dumps(marker, indent=1) + "\n")


def changed_since_saved(directory):
    """The files in the saved run ``directory`` that its app did not write as they are now:
    added since (a user's notes, a script) or of another size (edited). ``--overwrite``
    would delete them, so it refuses instead. File browsers' litter (``.DS_Store``) does not
    count. A run marked before the marker listed its files has no list to compare: none.

    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "config.json").write_text('{"app": "demo"}'); _write_marker(folder, "demo")
    >>> _ = (folder / "notes.md").write_text("mine"); changed_since_saved(folder)
    ['notes.md']
    """
    marker = _marker(directory)
    if marker is None or marker[1] is None:
        return []
    saved = marker[1]
    try:
        now = _files_in(directory)
    except OSError as error:  # a sub-folder that cannot be read could hold anything
        return [f"{error.filename or directory} (unreadable)"]
    return sorted(
        path
        for path, size in now.items()
        if saved.get(path) != size and path.rsplit("/", 1)[-1] not in LITTER
    )


def _replaceable(directory):
    """Whether ``--overwrite`` may replace ``directory``: a run our apps saved, as they saved it."""
    return saved_by(directory) is not None and not changed_since_saved(directory)


def _config_app(directory):
    """The ``"app"`` a folder's ``config.json`` names, if it is a name: to say whose run it is."""
    try:
        name = json.loads((Path(directory) / "config.json").read_text()).get("app")
    except (OSError, ValueError, AttributeError, RecursionError):
        return None
    return name if isinstance(name, str) and name.isidentifier() else None


def load_model_from_dir(directory, filename="model.keras", app=None):
    """Load ``directory/model.keras``, turning a missing or corrupt file into a :class:`UserError`.

    With ``app``, a run saved by another app is refused, naming that app.
    """
    path = Path(directory) / filename
    if not Path(directory).is_dir():
        raise UserError(f"--load {directory}: no such folder")
    other = saved_by(directory) or _config_app(directory)
    if app is not None and other is not None and other != app:
        raise UserError(f"--load {directory}: a run of {other}.py, not of {app}.py")
    if not path.is_file():
        raise UserError(f"--load {directory}: no {filename} in that folder")
    if not zipfile.is_zipfile(path):
        raise UserError(f"--load {directory}: {filename} is damaged (not a .keras zip archive)")
    import common

    common.load()  # TensorFlow, and every task's custom layers registered: the model can be read
    try:
        return keras.models.load_model(path)
    except Exception as error:  # Keras raises many types for a damaged zip/h5/config
        if "safe_mode" in str(error):  # a Lambda layer: Python code that loading would run
            raise UserError(
                f"--load {directory}: {filename} holds Python code (a Lambda layer); it was not "
                "loaded, because running code from a file is unsafe. Our apps never save one"
            ) from None
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        reason = reason if len(reason) <= 200 else reason[:200].rsplit(" ", 1)[0] + " ..."
        raise UserError(f"--load {directory}: {filename} could not be read ({reason})") from None


def write_json(path, data, reasons=None):
    """Write ``data`` as strict JSON: an undefined figure (NaN, infinity) becomes null, with why.

    Python's ``json`` writes ``NaN``, which no strict JSON parser reads. Each null
    figure gets a sibling ``"<key>_null_reason"``: ``reasons[key]`` if given, else
    a generic one.

    >>> import tempfile; path = Path(tempfile.mkdtemp()) / "m.json"
    >>> _ = write_json(path, {"f1": float("nan"), "n": 3}, {"f1": "no labelled anomalies"})
    >>> json.loads(path.read_text())
    {'f1': None, 'f1_null_reason': 'no labelled anomalies', 'n': 3}
    """
    reasons = reasons or {}

    def number(value):
        return isinstance(value, float) or type(value).__name__.startswith("float")

    def why(key, value):
        if key in reasons:
            return reasons[key]
        if math.isnan(value):
            return "undefined for this data (a division of zero by zero)"
        return "infinite for this data (a division by zero)"

    def clean(value):
        if isinstance(value, dict):
            cleaned = {}
            for key, item in value.items():
                if number(item) and not math.isfinite(item):
                    cleaned[key] = None
                    cleaned[f"{key}_null_reason"] = why(key, item)
                else:
                    cleaned[key] = clean(item)
            return cleaned
        if isinstance(value, (list, tuple)):
            return [clean(item) for item in value]
        if number(value):
            return float(value) if math.isfinite(value) else None
        if type(value).__name__.startswith(("int", "uint")):
            return int(value)
        return value

    Path(path).write_text(json.dumps(clean(data), indent=2, default=str, allow_nan=False))
    return path


_run_counter = itertools.count()


def default_run_path(app):
    """``runs/<app>/<date>-<time>.<microseconds>-<process id>-<counter>``: two runs never share one."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S.%f")
    return Path("runs") / app / f"{stamp}-{os.getpid()}-{next(_run_counter)}"


def check_out_folder(out, overwrite=False, load=None):
    """Check, before any work, that a run can be saved at ``out``; raise ``ValueError`` if not.

    A run is never written into an existing non-empty folder (unless
    ``overwrite`` and the folder is a saved run, holding only what its app wrote:
    see :func:`changed_since_saved`), into a file, into or around the
    folder it was loaded from (compared as files, so another path to the same
    folder counts too), or where the nearest existing parent cannot be written.
    """
    out = Path(out)
    parent = out.parent
    while not parent.exists():
        if os.path.lexists(parent):  # a link to nothing (an unmounted disk): mkdir would fail later
            raise ValueError(
                f"Expected a place that exists for {out}. Received: {parent}, a symbolic link "
                f"to nothing ({os.readlink(parent)})"
            )
        parent = parent.parent
    try:
        longest = os.pathconf(parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        longest = 255
    if len(os.fsencode(out.name)) > longest:  # checked first: the system refuses to look it up
        raise ValueError(
            f"Expected a folder name of at most {longest} bytes. Received: "
            f"{len(os.fsencode(out.name))} bytes"
        )
    if out.is_symlink():  # a link's target could be anything, or nothing: write only real folders
        raise ValueError(
            f"Expected a folder for the run, not a symbolic link. Received: {out} -> "
            f"{os.readlink(out)}"
        )
    try:
        resolved, here = out.resolve(), Path.cwd().resolve()
    except RuntimeError:  # a loop of symbolic links above it
        raise ValueError(f"Expected a path that leads somewhere. Received: {out}, a loop of links")
    if load is not None and _nested(out, Path(load)):
        raise ValueError(
            "Expected an output folder apart from the loaded run, which is never "
            f"overwritten. Received: {out}"
        )
    if resolved == here or resolved in here.parents:
        raise ValueError(
            f"Expected a folder of its own for the run. Received: {out}, which holds this one"
        )
    if os.path.ismount(out):  # a rename can never replace a mount point, empty or not
        raise ValueError(f"Expected a folder that can be replaced. Received: {out}, a mount point")
    if out.exists() and not out.is_dir():
        raise ValueError(
            f"Expected a folder to write the run into. Received: {out}, an existing file"
        )
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(f"Expected a new or empty folder. Received: {out}, which holds files")
        if saved_by(out) is None:  # replacing is for runs; a user's own folder is never deleted
            raise ValueError(
                "Expected a run saved by these apps to replace. Received: "
                f"{out}, which holds other files (a run saved by an older version, without "
                f"the {RUN_MARKER} marker, looks like this too: delete it yourself)"
            )
        changed = changed_since_saved(out)
        if changed:  # a run with the user's own files added: those would be deleted with it
            shown = ", ".join(changed[:3]) + (
                f" and {len(changed) - 3} more" if changed[3:] else ""
            )
            raise ValueError(
                "Expected a saved run as its app wrote it, to replace. Received: "
                f"{out}, which also holds files added or changed since it was saved ({shown}): "
                "move them out first, or delete the folder yourself"
            )
    try:  # a real probe: permissions, read-only mounts and pseudo file systems all show here
        if not parent.is_dir():
            raise NotADirectoryError(parent)
        os.rmdir(tempfile.mkdtemp(prefix=".probe-", dir=parent))
    except OSError:
        raise ValueError(
            f"Expected a writable place for {out}. Received: {parent}, which cannot be written"
        ) from None


def _nested(first, second):
    """Whether one of two paths is the other or lies inside it, compared as files on disk
    (device and inode), so that a symbolic link or a bind mount to the same folder counts too.

    Each path's folders are walked both as written and as resolved, because a link in the
    middle of a path leads elsewhere than its text says.
    """
    for inner, outer in ((first, second), (second, first)):
        for start in (Path(os.path.abspath(inner)), _resolved(inner)):
            for place in (start, *start.parents):
                if _same_folder(place, outer):
                    return True
    return False


def _resolved(path):
    try:
        return Path(path).resolve()
    except RuntimeError:  # a loop of links: compare it as written
        return Path(os.path.abspath(path))


def _same_folder(first, second):
    if _resolved(first) == _resolved(second):
        return True
    try:
        return os.path.exists(first) and os.path.exists(second) and os.path.samefile(first, second)
    except OSError:
        return False


@contextlib.contextmanager
def run_folder(target, overwrite=False):
    """Write a run whole or not at all: yield a hidden temporary folder, rename it into place at the end.

    If the block raises (or is interrupted: Ctrl-C, SIGTERM or SIGHUP, turned into
    an exception here), the temporary folder is removed and whatever was at
    ``target`` is untouched. The rename claims ``target`` atomically: if another
    run was saved there meanwhile, this one fails in one line and deletes nothing.
    With ``overwrite``, a saved run at ``target`` is replaced only once the new
    run is complete, and only while it holds nothing but what its app wrote (see
    :func:`changed_since_saved`). The run gets a marker file naming its app (from its
    ``config.json``) and listing its files, by which :func:`saved_by` knows it.
    Files get the usual permissions (0644 under a default umask), the model too.

    >>> target = Path(tempfile.mkdtemp()) / "run"
    >>> with run_folder(target) as folder:
    ...     _ = (folder / "config.json").write_text('{"app": "demo"}')
    >>> sorted(path.name for path in target.iterdir()), saved_by(target)
    (['.rnn-workshop-run', 'config.json'], 'demo')
    """
    target = Path(target)
    try:  # checked before the work too; here again, for what changed while the run trained
        check_out_folder(target, overwrite)
    except ValueError as error:
        raise UserError(
            f"--out {target}: {error}; this run was not saved (choose another --out)"
        ) from None
    target.parent.mkdir(parents=True, exist_ok=True)
    # A short hidden name: a long --out name plus a suffix could pass the file name limit.
    temporary = Path(tempfile.mkdtemp(prefix=f".{target.name[:40]}.partial-", dir=target.parent))
    previous = _raise_on_signals()
    try:
        yield temporary
        app = _config_app(temporary)
        if app is not None:
            _write_marker(temporary, app)
        _share_permissions(temporary)
        # One swap at a time beside ``target``: another run's replace cannot interleave with
        # this one's. A signal once it holds the lock would cut the swap in two: it waits.
        with _folder_locked(target.parent), _signals_held():
            if overwrite and _replaceable(target):  # else the claim fails on a folder with files
                _replace(target, temporary)
            else:
                _claim(target, temporary)
            temporary = None
    except OSError as error:
        if error.errno is None:  # a message of our own (an earlier run set aside): keep it whole
            raise
        # A full or read-only disk: name the run being written, not a file deep inside it.
        raise UserError(
            f"could not write the run to {target} ({error.strerror or error}); nothing was saved"
        ) from None
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _claim(target, temporary):
    """Rename ``temporary`` to ``target``, which must be absent or an empty folder: the
    rename fails rather than replace a folder with files, so of two runs saving to
    the same place at once, exactly one succeeds."""
    try:
        os.rename(temporary, target)
    except OSError as error:
        if error.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            raise
        raise UserError(
            f"--out {target}: something was saved there while this run was working; it was "
            "left as it is, and this run was not saved (choose another --out)"
        ) from None


def _replace(target, temporary):
    """``--overwrite``: set the saved run aside, put the new one in place, then delete the old."""
    old = Path(tempfile.mkdtemp(prefix=f".{target.name[:40]}.old-", dir=target.parent))
    try:
        os.replace(target, old / "run")
    except OSError:
        shutil.rmtree(old, ignore_errors=True)
        raise
    try:
        _claim(target, temporary)
    except (OSError, UserError):
        try:
            os.replace(old / "run", target)  # put the earlier run back before giving up
        except OSError:  # keep the only copy where it is, and say where
            raise OSError(f"the earlier run could not be put back; it is in {old}") from None
        shutil.rmtree(old, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _folder_locked(folder):
    """Hold an exclusive lock on ``folder`` (``flock`` on the folder itself) while runs saving
    into it swap their folders one at a time. The system releases it when the process ends,
    however it ends, so no lock is ever left behind. Where there is no ``flock`` (Windows, some
    network disks) the swap goes on unlocked: the rename alone still never replaces a run."""
    try:
        import fcntl

        handle = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):
        yield
        return
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:  # ENOLCK on a network disk: unlocked, as above
            pass
        yield
    finally:
        os.close(handle)


@contextlib.contextmanager
def _signals_held():
    """Hold Ctrl-C, SIGTERM and SIGHUP back for a moment that must not be cut in two; they
    arrive right after it (main thread only: elsewhere signals are not delivered anyway)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _raise_on_signals():
    """Turn SIGTERM and SIGHUP (a closed terminal) into an exception so ``finally`` blocks
    clean up; returns the handlers to restore (none off the main thread)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}

    def stop(signum, frame):
        raise KeyboardInterrupt("terminated")

    return {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGHUP)}


def _share_permissions(folder):
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for path in folder.rglob("*"):
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def prepare_out(out, app, overwrite=False, load=None):
    """The folder a run will be saved in, checked before any work: ``out`` or a new default.

    Raises :class:`UserError` naming ``--out`` when the run could not be saved
    there, so no training is wasted.
    """
    out = Path(out) if out is not None else default_run_path(app)
    if any(ord(character) < 32 or ord(character) == 127 for character in str(out)):
        # A pasted line break or tab: such a name would split every line that shows it.
        raise UserError(
            f"--out {str(out)!r}: expected a folder name without line breaks, tabs or other "
            "control characters"
        )
    try:
        check_out_folder(out, overwrite, load)
    except ValueError as error:
        hint = "" if overwrite else "; pass --overwrite to replace it"
        raise UserError(
            f"--out {out}: {error}{hint if 'holds files' in str(error) else ''}"
        ) from None
    return out
