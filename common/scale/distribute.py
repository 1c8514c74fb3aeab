"""Data-parallel training with ``tf.distribute``: one model, copied onto several devices or machines.

Every replica holds a full copy of the weights and reads a different slice of
each batch; after the backward pass the replicas' gradients are summed (an
*all-reduce*) so every copy takes the same step and the copies never drift apart.

:func:`setup` picks the strategy once, before any model is built:

- ``"none"``: TensorFlow's default strategy, one device. Results are the same
  as code that never heard of ``tf.distribute``.
- ``"mirrored"``: ``tf.distribute.MirroredStrategy`` over every local GPU, or,
  without a GPU, over the CPU split into two logical devices (sharing its cores).
- ``"multiworker"``: ``tf.distribute.MultiWorkerMirroredStrategy`` over the
  machines listed in the ``TF_CONFIG`` environment variable.

Keras 3.15's ``fit`` fails under ``MultiWorkerMirroredStrategy``
(keras-team/keras#20585) and, under ``MirroredStrategy``, on a batch that does
not split evenly over the replicas; so with either strategy
:func:`common.fit` trains with :func:`common.models.training.fit_distributed`, a
training loop of our own that runs the same step on every replica.

The batch size an app is given is per replica; the *global* batch, the one
gradient step's worth of examples, is that times the number of replicas.

    distribution = common.scale.distribute.setup("mirrored")
    with distribution.scope():
        model = build_and_compile()
    common.fit(model, train, validation, batch_size=distribution.global_batch(64),
               distribution=distribution)
"""

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import tensorflow as tf

STRATEGIES = ("none", "mirrored", "multiworker")


class WorkerLost(RuntimeError):
    """Another worker stopped answering; restarting every worker resumes from the last checkpoint."""


# What TensorFlow raises on the other workers when one of them dies (missed heartbeats).
PEER_FAILURES = (
    tf.errors.UnavailableError,
    tf.errors.AbortedError,
    tf.errors.CancelledError,
    tf.errors.DeadlineExceededError,
)


@dataclass(frozen=True)
class Distribution:
    """A strategy and what an app needs to know about it."""

    kind: str
    strategy: tf.distribute.Strategy = field(repr=False)
    devices: tuple  # this worker's replica devices
    workers: int = 1
    worker_index: int = 0
    mixed_precision: bool = False
    backup: Path | None = None  # multi-worker checkpoints: <backup>/worker-<index>/<model name>/
    fingerprint: str = ""  # the run's settings; checkpoints of other settings are not resumed

    @property
    def replicas(self):
        """Replicas on all workers together: ``num_replicas_in_sync``."""
        return self.strategy.num_replicas_in_sync

    @property
    def is_chief(self):
        """Worker 0 saves the run; the others only train."""
        return self.worker_index == 0

    @property
    def custom_loop(self):
        """Train with :func:`common.models.training.fit_distributed`, not Keras' ``fit`` (see there why)."""
        return self.kind != "none"

    def scope(self):
        """Build and compile models inside ``with distribution.scope():`` so their weights are mirrored."""
        return self.strategy.scope()

    def global_batch(self, per_replica):
        """Examples per gradient step across every replica."""
        return per_replica * self.replicas

    def local_copy(self, model):
        """The trained ``model`` on one device, outside the strategy, for predicting and saving.

        The copy goes through a ``.keras`` file, the same path a user's reload
        takes, so what is saved is what was trained. Without a strategy, ``model`` itself.
        """
        if self.kind == "none":
            return model
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.keras"
            model.save(path)
            return keras.models.load_model(path)

    def backup_for(self, name):
        """This worker's checkpoint folder for the model called ``name``, or None without a backup."""
        if self.backup is None:  # only multi-worker runs keep checkpoints
            return None
        return self._own_backup / name

    @property
    def _own_backup(self):
        return Path(self.backup) / f"worker-{self.worker_index}"

    def finish(self):
        """Once the chief has saved the run: every worker deletes its checkpoints.

        Each worker waits here for all the others (an all-reduce is a barrier), so
        no checkpoint goes before the chief's run folder is in place; if the
        chief fails to save, the others stop with :class:`WorkerLost` and keep theirs.
        """
        if self.backup is None:  # only multi-worker runs keep checkpoints
            return
        try:
            one = lambda: tf.distribute.get_replica_context().all_reduce("SUM", tf.constant(1.0))  # noqa: E731
            self.strategy.run(one)
        except (*PEER_FAILURES, tf.errors.InvalidArgumentError):  # gone, or out of step
            if self.is_chief:  # the run is saved; only another worker's leftovers remain
                print(
                    f"Note: another worker stopped at the end; its checkpoints in {self.backup} "
                    "can be deleted"
                )
            else:
                raise WorkerLost(
                    f"worker 0 stopped before it had saved the run; the checkpoints stay in "
                    f"{self.backup}: start every worker again with the same command to finish"
                ) from None
        shutil.rmtree(self._own_backup, ignore_errors=True)
        try:
            Path(self.backup).rmdir()
        except OSError:  # another worker's checkpoints are still there, or it is gone already
            pass

    def summary(self, per_replica):
        """What a run's metrics record about where it trained (JSON-ready)."""
        return {
            "strategy": self.kind,
            "replicas": self.replicas,
            "workers": self.workers,
            "batch_per_replica": per_replica,
            "global_batch": self.global_batch(per_replica),
            "mixed_precision": self.mixed_precision,
        }

    def describe(self, per_replica):
        """One line for the terminal: where training runs, and the batch arithmetic."""
        if self.kind == "none":
            return f"Training on one device ({self.devices[0]}), batches of {per_replica}"
        where = ", ".join(self.devices)
        if self.workers > 1:
            where = f"{self.workers} workers (this is worker {self.worker_index}; {where} here)"
        precision = "; mixed precision (float16 compute, float32 weights)" * self.mixed_precision
        return (
            f"Training data-parallel ({self.kind}) on {self.replicas} replicas: {where}; global "
            f"batch {self.global_batch(per_replica)} = {per_replica} per replica x "
            f"{self.replicas}{precision}"
        )


def setup(
    kind="none", mixed_precision=False, cpu_devices=2, backup=None, fingerprint="", wait_seconds=300
):
    """Create the strategy for ``kind``; call before any model is built.

    Args:
        kind: one of :data:`STRATEGIES`.
        mixed_precision: compute in float16 with float32 weights (Keras'
            ``"mixed_float16"`` policy). Worth it on GPUs with tensor cores only;
            on a CPU float16 is slower, so it needs a GPU.
        cpu_devices: for ``"mirrored"`` without a GPU, how many logical CPU
            devices to split the processor into. This must happen before
            TensorFlow runs its first operation.
        backup / fingerprint: for ``"multiworker"``, a folder for per-epoch
            checkpoints and the run's settings as text (see :func:`common.models.training.fit_distributed`);
            every worker must have the same settings.
        wait_seconds: for ``"multiworker"``, how long to wait for every worker to start.

    Raises:
        ValueError: an unknown ``kind``, a bad ``TF_CONFIG``, mixed precision
            without a GPU, or CPU devices asked for after TensorFlow started.
    """
    if kind not in STRATEGIES:
        raise ValueError(f"Expected a strategy in {STRATEGIES}. Received: {kind!r}")
    gpus = tf.config.list_physical_devices("GPU")
    if mixed_precision:
        if not gpus:
            raise ValueError(
                "Expected a GPU for mixed precision (float16 on a CPU is slower, not faster). "
                "Received: no GPU"
            )
        keras.mixed_precision.set_global_policy("mixed_float16")
    if kind == "none":
        strategy = tf.distribute.get_strategy()
        return Distribution(kind, strategy, ("GPU:0" if gpus else "CPU:0",), 1, 0, mixed_precision)
    if kind == "mirrored":
        devices = [f"/gpu:{i}" for i in range(len(gpus))] or split_cpu(cpu_devices)
        # One strategy per set of devices: two would number their all-reduces alike, and
        # TensorFlow would pair one's all-reduce with the other's ("Shape mismatch in the
        # collective instance").
        strategy = _MIRRORED.get(tuple(devices)) or tf.distribute.MirroredStrategy(devices)
        _MIRRORED[tuple(devices)] = strategy
        names = tuple(device.lstrip("/").upper() for device in devices)
        return Distribution(kind, strategy, names, 1, 0, mixed_precision)
    workers, index = read_tf_config(os.environ.get("TF_CONFIG"))
    print(f"Worker {index} of {len(workers)}: waiting for the others ({', '.join(workers)}) ...")
    wait_for_workers(workers, index, wait_seconds)
    # Collective operations pick ring all-reduce (CPU) or NCCL (GPU) by themselves.
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    local = tuple(f"GPU:{i}" for i in range(len(gpus))) or ("CPU:0",)
    distribution = Distribution(
        kind, strategy, local, len(workers), index, mixed_precision, backup, str(fingerprint)
    )
    _check_same_settings(distribution)
    return distribution


def wait_for_workers(workers, index, seconds=300):
    """Before TensorFlow joins the cluster: check the addresses, and wait until every worker is up.

    TensorFlow's own wait happens in C++, where neither Ctrl-C nor a time limit
    reaches it; a worker that never comes (a wrong address, a machine down)
    would hang the others for good. So each worker first opens its own port
    and knocks on the others' until all answer (TensorFlow's server takes the
    port over a moment later; a knock in between is simply repeated).

    Raises:
        ValueError: an address that does not resolve, this worker's port taken,
            or a worker not answering within ``seconds``.
    """
    import socket

    addresses = []
    for address in workers:
        host, _, port = address.rpartition(":")
        try:
            socket.getaddrinfo(host, int(port))
        except (OSError, UnicodeError, ValueError):
            raise ValueError(
                f"Expected worker addresses whose host is known. Received: {address[:100]}"
            ) from None
        addresses.append((host, int(port)))
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("", addresses[index][1]))
        listener.listen(64)
    except OSError as error:
        listener.close()
        raise ValueError(
            f"Expected port {addresses[index][1]} free for this worker ({workers[index]}). "
            f"Received: {error.strerror or error}"
        ) from None
    waiting = {i for i in range(len(addresses)) if i != index}
    deadline = time.monotonic() + seconds
    try:
        while waiting:
            for other in sorted(waiting):
                try:
                    socket.create_connection(addresses[other], timeout=1).close()
                    waiting.discard(other)
                except OSError:
                    pass
            if waiting and time.monotonic() > deadline:
                missing = ", ".join(workers[i] for i in sorted(waiting))
                raise ValueError(
                    f"Expected every worker in TF_CONFIG to start within {seconds:g} s. "
                    f"Received: no answer from {missing}"
                )
            time.sleep(0.2 if waiting else 0)
    finally:
        listener.close()


def gather(strategy, value):
    """The int ``value`` of every replica on every worker, as a list.

    A collective operation: every worker must call it at the same point, and
    all get the same list, so they can take one decision together.
    """

    def replica_value():
        own = tf.constant([value], dtype="int64")
        return tf.distribute.get_replica_context().all_gather(own, axis=0)

    gathered = strategy.experimental_local_results(strategy.run(replica_value))[0]
    return [int(number) for number in gathered.numpy()]


def _check_same_settings(distribution):
    """Every worker must train the same thing: compare the settings' checksums, all together."""
    import zlib

    own = zlib.crc32(distribution.fingerprint.encode())
    gathered = gather(distribution.strategy, own)
    if len(set(gathered)) > 1:
        differ = [i for i, value in enumerate(gathered) if value != own]
        raise ValueError(
            "Expected every worker to run the same command with the same settings. "
            f"Received: other settings on worker(s) {differ}"
        )


_MIRRORED = {}  # devices -> the MirroredStrategy over them


def split_cpu(count=2):
    """Split the CPU into ``count`` logical devices; their names.

    TensorFlow fixes its devices when it runs its first operation, so this
    must come before any model, tensor or dataset is made.
    """
    cpu = tf.config.list_physical_devices("CPU")[0]
    existing = tf.config.get_logical_device_configuration(cpu)
    if existing is None or len(existing) != count:
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * count
            )
        except RuntimeError:
            raise ValueError(
                f"Expected to split the CPU into {count} devices before TensorFlow started. "
                "Received: TensorFlow already running; set the strategy up first"
            ) from None
    return [f"/cpu:{i}" for i in range(count)]


def read_tf_config(text):
    """The cluster's worker addresses and this task's index, from ``TF_CONFIG``'s JSON text.

    ``TF_CONFIG`` is how TensorFlow documents describing a cluster: every
    machine gets the same ``cluster`` and its own ``task``::

        {"cluster": {"worker": ["host1:12345", "host2:12345"]},
         "task": {"type": "worker", "index": 0}}

    >>> read_tf_config('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}')
    (['a:1', 'b:2'], 1)
    """
    if not text:
        raise ValueError(
            "Expected the cluster in the TF_CONFIG environment variable, e.g. "
            '\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}\'. Received: TF_CONFIG unset'
        )
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        workers = list(cluster.get("chief", [])) + list(cluster["worker"])
        kind, index = task["type"], task["index"]
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as error:
        problem = f"no {error}" if isinstance(error, KeyError) else type(error).__name__
        raise ValueError(
            'Expected TF_CONFIG to be JSON with "cluster": {"worker": [...]} and "task": '
            f'{{"type": ..., "index": ...}}. Received: {text[:80]!r} ({problem})'
        ) from None
    if kind not in ("chief", "worker") or not isinstance(index, int) or isinstance(index, bool):
        raise ValueError(
            f'Expected TF_CONFIG\'s task to be {{"type": "worker", "index": <int>}}. Received: {task}'
        )
    if kind == "worker" and "chief" in cluster:
        index += len(cluster["chief"])  # the chief is worker 0 of the whole cluster

    def valid(address):
        host, _, port = address.rpartition(":") if isinstance(address, str) else ("", "", "")
        return bool(host) and port.isdigit() and 1 <= int(port) <= 65535

    if not all(valid(address) for address in workers):
        shown = str(workers)[:200]
        raise ValueError(
            f"Expected worker addresses as 'host:port' (port 1 to 65535). Received: {shown}"
        )
    if len(set(workers)) < len(workers):
        raise ValueError(f"Expected a different address for every worker. Received: {workers}")
    if not 0 <= index < len(workers) or (kind == "chief" and task["index"] != 0):
        raise ValueError(
            f"Expected TF_CONFIG's task index within its {len(workers)} workers. Received: {task}"
        )
    return workers, index


def shard_by_data(dataset):
    """``dataset`` with its auto-sharding set to ``DATA``: every worker keeps its share of each batch.

    Our datasets are arrays in memory or a stream of random slices, not
    files, so sharding by file (TensorFlow's first choice) cannot apply: every
    worker runs the same seeded pipeline and keeps its replicas' slices of
    each global batch. Saying so here avoids the silent fallback.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


# ---------------------------------------------------------------- a cluster on one machine


def free_ports(count):
    """``count`` TCP ports on 127.0.0.1 that were free a moment ago (the OS picks them)."""
    import socket

    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def local_tf_configs(workers):
    """One ``TF_CONFIG`` text per worker for a cluster of ``workers`` processes on this machine."""
    addresses = [f"127.0.0.1:{port}" for port in free_ports(workers)]
    return [
        json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})
        for index in range(workers)
    ]


def start_local_cluster(command, workers=2, logs=None, environment=None):
    """Start ``command`` (a list, as for ``subprocess``) once per worker, each with its ``TF_CONFIG``.

    What a cluster scheduler does on several machines, here on one: every
    process gets the same cluster and its own task index. Output goes to
    ``logs/worker-<index>.log`` when ``logs`` is a folder, else to this terminal,
    each line after its worker's ``[index]``. Returns the ``subprocess.Popen``
    objects, worker 0 first.
    """
    import subprocess
    import threading

    def label_lines(index, stream):
        for line in stream:
            print(f"[{index}] {line}", end="", flush=True)

    processes = []
    for index, tf_config in enumerate(local_tf_configs(workers)):
        env = {**os.environ, **(environment or {}), "TF_CONFIG": tf_config}
        if logs is not None:
            Path(logs).mkdir(parents=True, exist_ok=True)
            with open(Path(logs) / f"worker-{index}.log", "w") as output:  # the child keeps a copy
                process = subprocess.Popen(command, env=env, stdout=output, stderr=output)
        else:
            process = subprocess.Popen(
                command,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
            )
            threading.Thread(target=label_lines, args=(index, process.stdout), daemon=True).start()
        processes.append(process)
    return processes
