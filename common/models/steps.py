"""How a training step runs on a CPU, and which way is fastest on the machine at hand.

The same training step (forward pass, loss, gradients, Adam update) can run three ways:

- ``"xla"``: XLA compiles the whole step into one fused program (``jit_compile=True``);
- ``"plain"``: Keras' default on a CPU, a TensorFlow graph whose matrix products call
  oneDNN's kernels (``jit_compile=False``);
- ``"bf16"``: the plain graph computing in bfloat16 (Keras' ``"mixed_bfloat16"`` policy)
  while the weights stay float32; only offered on CPUs with bfloat16 instructions
  (AVX512-BF16 or AMX), elsewhere it is emulated and slow.

Which is fastest depends on the processor *and* the model. Measured on 2 cores
(README, ``bench/textgen.py --steps``): on an AMD EPYC, XLA beat plain by 1.3x
for a GRU-256 and bf16 beat XLA by 1.3x for an LSTM-512; on an Intel Xeon plain
beat XLA by 1.3-1.5x. No rule fits both, so :func:`fastest_step` times each way
for a few steps and remembers the answer per processor and model::

    def build(step):
        with dtype_policy(step):
            model = make_my_model()
        model.compile(optimizer="adam", loss="mse", jit_compile=step == "xla")
        return model

    best, timings = fastest_step(build, inputs, targets, cache_file=path, key="my-model")

A model trained in bf16 keeps float32 weights; :func:`in_float32` copies it
into a float32 model to save and sample, so the saved file runs anywhere.
"""

import contextlib
import json
import os
import platform
import statistics
import time
from pathlib import Path

import keras
import tensorflow as tf

STEPS = ("xla", "plain", "bf16")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo names of bfloat16 arithmetic


def cpu_flags():
    """The processor's feature flags (Linux), or an empty set where they cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_name():
    """The processor's model name, with its core count: a cached timing holds for this pair."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def available_steps():
    """The ways worth timing here: ``bf16`` only where the CPU has bfloat16 instructions."""
    has_bf16 = bool(cpu_flags() & set(BF16_FLAGS))
    return STEPS if has_bf16 else tuple(step for step in STEPS if step != "bf16")


def check_step(step):
    if step not in STEPS:
        raise ValueError(f"Expected a training step in {STEPS}. Received: step={step!r}")


@contextlib.contextmanager
def dtype_policy(step):
    """Layers built inside this block compute in bfloat16 for ``"bf16"``; other steps (and
    ``"auto"``, Keras' own choice on a GPU or under a strategy) change nothing.

    Keras reads the global policy when a layer is created, so the policy is set
    for the block only and restored after it (a policy set before, such as
    ``"mixed_float16"`` on a GPU, stays for the other steps).
    """
    if step != "auto":
        check_step(step)
    previous = keras.config.dtype_policy()
    if step == "bf16":
        keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def in_float32(model):
    """A float32 copy of ``model`` with the same weights (those of a bf16 model are float32 already).

    Saved and sampled in float32, the model runs the same on any machine.
    """

    def float32_layer(layer):
        config = layer.get_config()
        if "dtype" in config:  # a layer; the graph's small operations (a mask's NotEqual) have none
            config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=float32_layer)
    copy.set_weights(model.get_weights())
    return copy


def time_step(model, inputs, targets, steps=10):
    """Seconds per training step on one batch: the median of ``steps`` steps after one that compiles.

    Returns a dict: ``compile_seconds`` (the first step, wall clock),
    ``wall_seconds`` and ``cpu_seconds`` (this process's CPU time, all cores)
    per step after it. The median, because a step that another program slowed
    down should not decide.
    """
    started = time.perf_counter()
    model.train_on_batch(inputs, targets)
    compile_seconds = time.perf_counter() - started
    wall, cpu = [], []
    for _ in range(steps):
        started, cpu_started = time.perf_counter(), time.process_time()
        model.train_on_batch(inputs, targets)
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
    return {
        "compile_seconds": compile_seconds,
        "wall_seconds": statistics.median(wall),
        "cpu_seconds": statistics.median(cpu),
    }


def fastest_step(build, inputs, targets, *, steps=10, candidates=None, cache_file=None, key=""):
    """Time each way to run a training step here and return ``(fastest, timings)``.

    Args:
        build: ``build(step)`` returns a compiled model that trains as ``step`` says
            (see the module's docstring); each is built, timed and thrown away.
        inputs / targets: one batch, as the model trains on it.
        steps: timed steps per way, after one that compiles.
        candidates: the ways to time; default :func:`available_steps`.
        cache_file: a JSON file remembering the answer per ``key`` and processor, so a
            later run skips the timing; None: always time. An unreadable file is ignored.
        key: what the timing depends on besides the processor (the model, the batch shape).

    ``timings`` maps each way to :func:`time_step`'s dict (plus ``"cached": True``
    when read from ``cache_file``). The fastest takes the least wall time per step.
    """
    candidates = tuple(candidates or available_steps())
    for step in candidates:
        check_step(step)
    full_key = f"{cpu_name()} | TensorFlow {tf.__version__}, Keras {keras.__version__} | {key}"
    cache = read_cache(cache_file)
    timings = cache.get(full_key)
    if is_timing_table(timings) and set(timings) == set(candidates):
        timings = {step: {**timing, "cached": True} for step, timing in timings.items()}
    else:
        timings = {step: time_step(build(step), inputs, targets, steps) for step in candidates}
        if cache_file is not None:
            write_cache(cache_file, {**cache, full_key: timings})
    return min(timings, key=lambda step: timings[step]["wall_seconds"]), timings


def is_timing_table(timings):
    """True for ``{step: {"wall_seconds": number, ...}}``: what a cache entry must be to be read."""

    def seconds(timing):
        value = timing.get("wall_seconds") if isinstance(timing, dict) else None
        return value if isinstance(value, (int, float)) else float("nan")

    return isinstance(timings, dict) and all(0 < seconds(t) < 1e6 for t in timings.values())


def read_cache(path):
    if path is None:
        return {}
    try:
        cache = json.loads(Path(path).read_text())
    except (OSError, ValueError):  # none yet, or unreadable: time again
        return {}
    return cache if isinstance(cache, dict) else {}


def write_cache(path, cache):
    """Write the cache beside itself, then rename: a reader never sees half a file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        temporary.write_text(json.dumps(cache, indent=1))
        temporary.replace(path)
    except OSError:  # a read-only cache only costs the timing next time
        pass
