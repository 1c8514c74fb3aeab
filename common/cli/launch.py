"""``python -m common.cli.launch [--workers N] COMMAND...``: run COMMAND as an N-worker cluster on this machine.

One process per worker, each with its own ``TF_CONFIG`` naming 127.0.0.1
ports, and their output labelled ``[0]``, ``[1]``, ...: how to try
``--distribute multiworker`` on a laptop. On real machines a scheduler sets
``TF_CONFIG`` (see the README's "Scaling out")::

    python -m common.cli.launch --workers 2 python apps/forecast.py --quick --distribute multiworker --out runs/forecast/cluster
"""

import argparse
import sys

from common.cli.options import OneLineErrorParser
from common.scale.distribute import start_local_cluster


def main(argv=None):
    parser = OneLineErrorParser(
        prog="python -m common.cli.launch",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="processes, 1 to 16 (default: %(default)s)"
    )
    parser.add_argument(
        "command", nargs=argparse.REMAINDER, help="e.g. python apps/forecast.py ..."
    )
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command or not 1 <= args.workers <= 16:
        parser.error("expected --workers N (1 to 16) and a command to run")
    if command[0] in ("python", "python3"):  # the Python running this, with its packages
        command[0] = sys.executable
    try:
        processes = start_local_cluster(command, args.workers)
    except OSError as error:
        parser.error(f"could not start {command[0]!r}: {error.strerror or error}")
    try:
        codes = [process.wait() for process in processes]
    except KeyboardInterrupt:  # Ctrl-C: stop every worker (each says so), then report it
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait()
        return 130
    failed = [code for code in codes if code != 0]
    return (failed[0] if failed[0] > 0 else 128 - failed[0]) if failed else 0


if __name__ == "__main__":
    sys.exit(main())
