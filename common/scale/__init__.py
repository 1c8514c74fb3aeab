"""Layer 0, scaling out: distribution strategies (one device, mirrored, multi-worker) and the
collective calls the training loop needs. Imports nothing else from ``common``."""

from common.scale import distribute  # noqa: F401
