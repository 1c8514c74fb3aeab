"""The promises the README makes about the repository itself."""

import hashlib
import re
import subprocess
import sys
from pathlib import Path

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


def test_apps_answer_help_and_option_errors_before_tensorflow_loads():
    import os

    # Settings exported for other work must not stop the apps: another Keras backend, a
    # matplotlib backend that does not exist (Keras imports matplotlib as it starts).
    environment = os.environ | {"KERAS_BACKEND": "jax", "MPLBACKEND": "nonsense"}
    apps = sorted((REPO / "apps").glob("[a-z]*.py"))
    running = [  # -X importtime lists every module imported, on stderr
        subprocess.Popen(
            [sys.executable, "-X", "importtime", str(app), *arguments],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        for app in apps
        for arguments in (["--help"], ["--epochs", "0"])
    ]
    for process in running:
        stdout, stderr = process.communicate(timeout=180)
        app, arguments = Path(process.args[3]).name, process.args[4:]
        imported = [line.rsplit("|", 1)[-1].strip() for line in stderr.splitlines()]
        assert "tensorflow" not in imported, f"{app} {arguments} loaded TensorFlow"
        messages = [line for line in stderr.splitlines() if not line.startswith("import time:")]
        if arguments == ["--help"]:
            assert process.returncode == 0, f"{app}: {messages[-5:]}"
            assert "--quick" in stdout and "--seed" in stdout, app
        else:
            assert process.returncode == 2, f"{app}: {messages[-5:]}"
            assert messages[-1].startswith(f"{app[:-3]}: error: argument --epochs"), messages


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
