"""The command-line apps, one file each; ``python apps/<name>.py --help`` runs one.

A package too, so that tests and benchmarks import an app (``from apps import forecast``)
and call ``forecast.main(["--quick"])`` in the same process.
"""
