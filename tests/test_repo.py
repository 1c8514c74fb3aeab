"""The promises the README makes about the repository itself."""

import hashlib
import re
import subprocess
import sys

from conftest import REPO

README = (REPO / "README.md").read_text()


def quickstart_commands():
    section = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_quickstart_is_two_commands_and_ci_runs_the_second_verbatim():
    install_and_run, install_and_test = quickstart_commands()
    assert install_and_run.endswith("pip install -r requirements.txt && python apps/forecast.py")
    assert install_and_test.endswith(
        "pip install -r requirements-dev.txt && ruff format --check . && ruff check . && python -m pytest"
    )
    ci_lines = (REPO / ".ci" / "run").read_text().splitlines()
    assert install_and_test in ci_lines


def test_requirements_install_common_editable():
    lines = [line.strip() for line in (REPO / "requirements.txt").read_text().splitlines()]
    assert "-e ." in lines
    assert "-r requirements.txt" in (REPO / "requirements-dev.txt").read_text().splitlines()


def test_bundled_data_matches_its_recorded_size_and_checksum():
    table = (REPO / "data" / "README.md").read_text()
    rows = re.findall(r"^\| `([^`]+)` \| [^|]+ \| `([0-9a-f]{64})` \|", table, flags=re.MULTILINE)
    assert rows, "data/README.md lists no files"
    for name, checksum in rows:
        assert hashlib.sha256((REPO / "data" / name).read_bytes()).hexdigest() == checksum, name
    bundled = {
        path.name
        for path in (REPO / "data").iterdir()
        if path.suffix in {".csv", ".gz", ".xz", ".txt", ".json"}
    }
    assert bundled <= {name for name, _ in rows}, "a data file is missing from data/README.md"
    total = sum((REPO / "data" / name).stat().st_size for name, _ in rows)
    assert total < 15 * 10**6, f"data/ holds {total / 1e6:.1f} MB; the project keeps it under 15"


# Runs an app as a script, then says on stdout whether TensorFlow was imported. (-X importtime
# cannot tell: TensorFlow's import is made with descriptor 2, stderr, silenced.)
RUN_AND_SAY_IF_TENSORFLOW_LOADED = """
import runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    print("tensorflow loaded" if "tensorflow" in sys.modules else "no tensorflow")
"""

# What each app answers before TensorFlow loads: an option error, a typed path that does not
# exist, a run folder that is not free, a value read_config checks.
ANSWERED_BEFORE_TENSORFLOW = [
    ("forecast", ["--csv", "missing.csv"], "--csv missing.csv: no such file"),
    ("forecast", ["--load", "missing"], "--load missing: no such folder"),
    ("anomaly", ["--out", "FULL"], "which holds files"),
    ("anomaly", ["--csv", "missing"], "no such file or folder"),
    ("sentiment", ["--load", "missing", "--predict", "fine"], "no such folder"),
    ("textgen", ["--text", "missing.txt"], "no such file"),
    ("translate", ["--length-penalty", "9"], "between 0 and 5"),
    ("translate", ["--direction", "xx-yy"], "from or to English"),
    ("forecast", ["--mixed-precision", "--load", "missing"], "not used with --load"),
    ("translate", ["--load", "missing", "--translate", "Hi."], "no such folder"),
    ("speech", ["--load", "missing", "--wav", "missing.wav"], "no such file"),
]


def test_apps_answer_help_and_option_errors_before_tensorflow_loads(tmp_path):
    import os

    # Settings exported for other work must not stop the apps: another Keras backend, a
    # matplotlib backend that does not exist (Keras imports matplotlib as it starts).
    environment = os.environ | {"KERAS_BACKEND": "jax", "MPLBACKEND": "nonsense"}
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("a file of the user's")
    cases = [(app.stem, ["--help"], None) for app in sorted((REPO / "apps").glob("[a-z]*.py"))]
    cases += [(app, ["--epochs", "0"], "argument --epochs") for app, _, _ in cases]
    cases += ANSWERED_BEFORE_TENSORFLOW
    running = [  # all at once: each is a fraction of a second
        subprocess.Popen(
            [sys.executable, "-c", RUN_AND_SAY_IF_TENSORFLOW_LOADED, REPO / "apps" / f"{app}.py"]
            + [str(tmp_path / "full") if a == "FULL" else a for a in arguments],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
            cwd=tmp_path,  # where the "missing" paths are missing
        )
        for app, arguments, _ in cases
    ]
    for (app, arguments, message), process in zip(cases, running):
        stdout, stderr = process.communicate(timeout=120)
        result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        said = result.stdout.splitlines()[-1] if result.stdout else ""
        assert said == "no tensorflow", f"{app} {arguments}: {said}; {result.stderr[-300:]}"
        # TensorFlow's start-up log noise never reaches the terminal either way.
        assert "oneDNN" not in result.stderr and "cuda" not in result.stderr.lower()
        if message is None:
            assert result.returncode == 0 and "--quick" in result.stdout, f"{app}: {result.stderr}"
        else:
            lines = [line for line in result.stderr.splitlines() if "KERAS_BACKEND" not in line]
            assert result.returncode == 2 and len(lines) == 1, result.stderr
            assert lines[0].startswith(f"{app}: error:") and message in lines[0], lines


def test_the_choices_apps_offer_before_tensorflow_loads_are_the_librarys():
    # The apps spell these out so that --help needs no TensorFlow; they must not drift.
    import common
    from common.tasks import anomaly, charlm, detectors

    from conftest import load_app

    def offered(app, flag):
        parser = load_app(app).Config.parser("")
        action = next(action for action in parser._actions if flag in action.option_strings)
        return action.choices, action.default, action.help

    for app in ("forecast", "sentiment"):
        assert sorted(offered(app, "--cell")[0]) == sorted(common.CELLS), app
    assert offered("anomaly", "--detector")[0] == list(detectors.NAMES)
    assert offered("anomaly", "--series")[0] == sorted(anomaly.BUNDLED)
    assert offered("anomaly", "--alarm-rule")[0] == list(anomaly.ALARM_RULES)
    assert offered("anomaly", "--false-alarms")[1] == anomaly.FALSE_ALARMS_PER_1000
    assert offered("textgen", "--train-step")[0] == ["auto", *common.models.steps.STEPS]
    assert f"at most {charlm.MAX_TEXT_BYTES // 10**6} MB" in offered("textgen", "--text")[2]


# The layers of ``common``, lowest first: a module may import its own layer's package and the
# layers below it, never one above (README, "Architecture").
LAYERS = {"scale": 0, "data": 1, "models": 1, "report": 2, "tasks": 3, "cli": 4}


def common_imports(path):
    """The ``common.<layer>`` packages a source file imports, anywhere in it (lazy imports too)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "common" and len(parts) > 1 and parts[1] in LAYERS:
                found.add(parts[1])
    return found


def test_lower_layers_of_common_never_import_higher_ones():
    packages = {
        path.name for path in (REPO / "common").iterdir() if (path / "__init__.py").exists()
    }
    assert packages == set(LAYERS), "a package of common is missing from LAYERS (or gone)"
    for layer, rank in LAYERS.items():
        for path in sorted((REPO / "common" / layer).glob("*.py")):
            for imported in common_imports(path) - {layer}:
                assert LAYERS[imported] < rank, (
                    f"{path.relative_to(REPO)} ({layer}) imports common.{imported}, a layer at "
                    "its level or above"
                )


def test_every_apps_help_shows_the_defaults_its_config_holds():
    import dataclasses

    import pytest

    from conftest import load_app

    for name in ("forecast", "sentiment", "textgen", "anomaly", "translate", "speech"):
        config_class = load_app(name).Config
        parser = config_class.parser(load_app(name).__doc__)
        parsed = config_class.from_args(parser.parse_args([]))
        assert parsed == dataclasses.replace(config_class(), progress=parsed.progress), name
        help_text = " ".join(parser.format_help().split())
        for action in parser._actions:
            default = action.default
            if default is None or default is False or default == [] or action.help is None:
                continue
            if "==SUPPRESS==" in (default, action.help):  # --help itself, hidden options
                continue
            shown = " ".join(map(str, default)) if isinstance(default, list) else default
            shown = str(shown).replace("\n", "\\n")
            assert f"(default: {shown}" in help_text, f"{name} {action.option_strings}"
        with pytest.raises(SystemExit):
            parser.parse_args(["--epochs", "0"])


def test_ctrl_c_while_tensorflow_loads_is_one_line(tmp_path):
    import signal
    import time

    process = subprocess.Popen(  # --help answers before TensorFlow loads: a run is needed
        [
            sys.executable,
            str(REPO / "apps" / "forecast.py"),
            "--quick",
            "--out",
            str(tmp_path / "r"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)  # TensorFlow takes seconds to load; the app is inside that import now
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    assert (process.returncode, stderr) == (130, "interrupted; nothing was saved\n"), stderr
    assert not (tmp_path / "r").exists()
