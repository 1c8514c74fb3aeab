"""Every notebook runs top to bottom in quick mode, and none is committed with outputs.

Each notebook is executed on a fresh kernel with nbclient, from ``notebooks/`` as
the working directory, with ``RNN_WORKSHOP_QUICK=1`` (tiny data, one or two
epochs) and Jupyter's inline plotting backend, so every figure is really drawn
and a cell that plots must show an image. Notebooks assert their own facts (a
NumPy cell equal to Keras, hand gradients equal to finite differences, ...), so
a failed assertion in a notebook fails its test here.

Outputs stay out of git so diffs show code, not numbers and images; run
``jupyter nbconvert --clear-output --inplace notebooks/*.ipynb`` before committing.
"""

import concurrent.futures
import os
import re
import sys
from pathlib import Path

import nbclient
import nbformat
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
TIMEOUT_PER_CELL = 300  # seconds; a whole notebook takes about 10-30 s in quick mode


def notebook_id(path):
    return path.stem


def test_the_track_is_there():
    assert len(NOTEBOOKS) >= 8, (
        f"Expected the teaching notebooks in {NOTEBOOK_DIR}. Found: {[p.name for p in NOTEBOOKS]}"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=notebook_id)
def test_notebook_has_no_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    dirty = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
        and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, (
        f"{path.name}: cells {dirty} have outputs or execution counts; clear them before committing"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=notebook_id)
def test_notebook_solutions_are_folded(path):
    """The exercises' solutions are hidden until the learner unfolds them."""
    notebook = nbformat.read(path, as_version=4)
    solutions = [
        cell
        for cell in notebook.cells
        if cell.cell_type == "code" and cell.source.startswith("# Solution")
    ]
    assert solutions, f"{path.name}: expected solution cells starting with '# Solution'"
    for cell in solutions:
        assert cell.metadata.get("jupyter", {}).get("source_hidden") is True, (
            f"{path.name}: unfolded solution {cell.source[:40]!r}"
        )
        assert "solution" in cell.metadata.get("tags", []), (
            f"{path.name}: solution without the 'solution' tag"
        )


@pytest.fixture(scope="module")
def kernel_environment():
    """Quick mode, inline plots (drawn to PNG), and this interpreter's directory first on PATH.

    jupyter_client starts the ``python3`` kernel with ``sys.executable`` (the
    interpreter running pytest, so the kernel sees the same ``common`` and
    TensorFlow); the PATH entry covers anything the kernel itself spawns.
    """
    saved = dict(os.environ)
    os.environ["RNN_WORKSHOP_QUICK"] = "1"
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
    yield
    os.environ.clear()
    os.environ.update(saved)


def execute(path):
    """``path`` run top to bottom on a fresh kernel: the notebook with its outputs."""
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=TIMEOUT_PER_CELL,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},  # cwd of the kernel
    )
    client.execute()
    return notebook


KERNELS_AT_ONCE = 2  # quick mode is mostly graph tracing, one core each: two kernels share 2 cores


@pytest.fixture(scope="module")
def executed(request, kernel_environment):
    """Path -> a future of the executed notebook, for every notebook this session selected,
    started on first use and run two at a time; each notebook's own test waits for its result."""
    selected = [
        item.callspec.params["path"]
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_notebook_runs_in_quick_mode"
    ]
    with concurrent.futures.ThreadPoolExecutor(KERNELS_AT_ONCE) as pool:
        yield {path: pool.submit(execute, path) for path in selected}


@pytest.mark.slow  # every notebook, each in its own kernel
@pytest.mark.parametrize("path", NOTEBOOKS, ids=notebook_id)
def test_notebook_runs_in_quick_mode(path, executed):
    try:
        notebook = executed[path].result()
    except nbclient.exceptions.CellExecutionError as error:
        pytest.fail(f"{path.name} failed in quick mode:\n{error}", pytrace=False)
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors, f"{path.name}: {errors[0].ename}: {errors[0].evalue}"
    # Every cell that draws must show its figure: a drawing bug cannot pass unseen.
    silent = [
        index
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code"
        and PLOTS.search(cell.source)
        and not any("image/png" in output.get("data", {}) for output in cell.outputs)
    ]
    assert not silent, f"{path.name}: cells {silent} draw but show no image"


PLOTS = re.compile(r"plt\.show\(\)|plt\.subplots\(|\bshow_attention\(|common\.plot_")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=notebook_id)
def test_notebook_follows_the_template(path):
    """Title "# NN ...", the Colab cell next, solutions numbered "# Solution N: ..."."""
    cells = nbformat.read(path, as_version=4).cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith(f"# {path.stem[:2]} ")
    assert cells[1].cell_type == "code" and "google.colab" in cells[1].source
    for cell in cells:
        if cell.cell_type == "code" and cell.source.startswith("# Solution"):
            assert re.match(r"# Solution \d+: \S", cell.source), cell.source[:60]


def run_colab_cell(source, tmp_path, monkeypatch):
    """Run a notebook's Colab cell as Colab would (its ``!`` lines as shell commands), in a
    process where ``google.colab`` is importable; return the commands and how the cell ended."""
    from IPython.core.inputtransformer2 import TransformerManager

    commands = []

    class Shell:
        def system(self, command):  # what `!git clone ...` becomes
            commands.append(command)

    monkeypatch.setitem(sys.modules, "google.colab", type(sys)("google.colab"))
    monkeypatch.chdir(tmp_path)
    code = TransformerManager().transform_cell(source)
    with pytest.raises(SystemExit) as stopped:
        exec(code, {"get_ipython": Shell})
    return commands, str(stopped.value)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=notebook_id)
def test_the_colab_cell_says_what_to_do_instead_of_failing(path, tmp_path, monkeypatch):
    """Unedited, the cell stops with one instruction and runs nothing; with a URL that cannot
    be cloned, it says so instead of failing later in os.chdir with a traceback."""
    source = nbformat.read(path, as_version=4).cells[1].source
    commands, said = run_colab_cell(source, tmp_path, monkeypatch)
    assert commands == [] and said.startswith("Colab: set REPO_URL in this cell")
    with_url = source.replace('REPO_URL = ""', 'REPO_URL = "https://example.org/nowhere.git"', 1)
    commands, said = run_colab_cell(with_url, tmp_path, monkeypatch)
    assert len(commands) == 1 and commands[0].startswith("git clone")
    assert said.startswith("Colab: could not clone https://example.org/nowhere.git")


def test_both_readmes_list_every_notebook():
    """A notebook added, renamed or split shows up in the tables learners read."""
    for readme in (NOTEBOOK_DIR / "README.md", NOTEBOOK_DIR.parent / "README.md"):
        text = readme.read_text(encoding="utf-8")
        listed = set(re.findall(r"^\| \[?`(\d\d\w*)`", text, flags=re.MULTILINE))
        assert listed == {path.stem for path in NOTEBOOKS}, f"{readme}: {sorted(listed)}"
