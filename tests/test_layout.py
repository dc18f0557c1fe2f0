"""The house's shape: the layout follows the data flow, no module passes 400 lines unexplained, the README lists it.

The checks read the sources with :mod:`ast`; no module of raysweep is imported.

- Layering. ``STAGES`` is the data flow, first to last, as the top-level modules and packages of ``raysweep/``. A
  module may import its own stage and the stages before it, never one after it. Every import statement counts,
  also one inside a function (a lazy import is still a dependency); names looked up at run time from strings
  (the package's notebook API, the families registry) are not imports and are not checked.
- Size. A module of more than ``MAX_LINES`` lines says why in its docstring: one paragraph of it names the limit
  (``400``) and gives the reason (``because`` or ``why``), e.g. "Over 400 lines because it is one rule: ...".
- The README's layout section has one line per module, in the order of ``STAGES``.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "raysweep"
MAX_LINES = 400

# The data flow, first to last: (stage, its top-level modules and packages under raysweep/). "__init__" is the
# package itself (``__version__``; its notebook API is looked up by name on first use, so importing it runs no stage).
STAGES = (
    ("shared helpers", ("__init__", "storage", "samples", "plots")),
    ("data formats", ("mpd", "dataset")),  # the slice format synth writes and ingest reads; the tables ingest writes
    ("synth", ("synth",)),
    ("ingest", ("ingest",)),
    ("features", ("features", "feature_matrix")),  # feature_matrix: the file features writes, every later stage reads
    ("default data", ("default_data",)),  # synth -> ingest -> features, for the demo and the commands' defaults
    ("model search", ("pairwise", "scores", "families", "models", "null_model", "selection", "halving")),
    ("sweep", ("sweep_settings", "run_folder", "_trainable", "_progress", "_shared_builds", "_ray_rung", "tune")),
    ("finalize", ("finalize",)),
    ("recommend", ("recommend",)),
    ("entry points", ("demo",)),
)
STAGE_OF = {name: position for position, (_, names) in enumerate(STAGES) for name in names}
FLOW = " -> ".join(stage for stage, _ in STAGES)


def module_files():
    return sorted(PACKAGE.rglob("*.py"))


def module_name(path):
    """``raysweep.synth.catalog`` of ``raysweep/synth/catalog.py``; a package's ``__init__.py`` is the package."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level(module):
    """The top-level module or package of raysweep that ``module`` belongs to (``__init__``: the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imported_modules(module, source, is_package=False):
    """``(line, raysweep module)`` for every import of a raysweep module in ``source``, absolute or relative.

    ``from raysweep import x`` is the module ``raysweep.x`` when there is one, else a name of the package itself.
    """
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                exists = (ROOT / Path(*submodule.split("."))).with_suffix(".py").exists() or \
                    (ROOT / Path(*submodule.split("."))).is_dir()
                found.append((node.lineno, submodule if exists else base))
    return [(line, name) for line, name in found if name == "raysweep" or name.startswith("raysweep.")]


def later_stage_imports(module, source, is_package=False):
    """One message per import in ``source`` of a stage after ``module``'s in the data flow."""
    own = STAGE_OF[top_level(module)]
    messages = []
    for line, target in imported_modules(module, source, is_package):
        theirs = STAGE_OF.get(top_level(target))
        if theirs is not None and theirs > own:
            messages.append(f"{module} (stage '{STAGES[own][0]}') imports {target} (stage '{STAGES[theirs][0]}') "
                            f"at line {line}: a later stage of the data flow {FLOW}")
    return messages


def test_every_module_belongs_to_a_stage():
    unplaced = sorted({top_level(module_name(path)) for path in module_files()} - set(STAGE_OF))
    assert not unplaced, f"raysweep modules in no stage of STAGES (add each to the stage whose data it works on): " \
                         f"{', '.join(unplaced)}"


def test_every_stage_module_exists():
    missing = [name for name in STAGE_OF if name != "__init__"
               and not (PACKAGE / f"{name}.py").exists() and not (PACKAGE / name / "__init__.py").exists()]
    assert not missing, f"STAGES names modules raysweep does not have: {', '.join(missing)}"


def test_no_module_imports_a_later_stage():
    violations = [message for path in module_files()
                  for message in later_stage_imports(module_name(path), path.read_text(), path.name == "__init__.py")]
    assert not violations, "\n".join(violations)


@pytest.mark.parametrize("module, source, expected", [
    ("raysweep.ingest", "def f():\n    from raysweep.tune import run_sweep\n", ["raysweep.tune"]),
    ("raysweep.scores", "import raysweep.finalize.refit\n", ["raysweep.finalize.refit"]),
    ("raysweep.halving", "from raysweep import samples, run_folder\n", ["raysweep.run_folder"]),
    ("raysweep.synth.catalog", "from ..recommend import index\n", ["raysweep.recommend.index"]),
    ("raysweep.tune", "from raysweep.features.audio import AUDIO_FEATURES\nimport numpy\n", []),
    ("raysweep.run_folder", "from raysweep import __version__\n", []),
])
def test_later_stage_imports_are_found(module, source, expected):
    messages = later_stage_imports(module, source)
    assert [re.search(r"imports (\S+)", message).group(1) for message in messages] == expected
    assert all("a later stage of the data flow" in message for message in messages)


def size_reason(docstring):
    """The paragraph of ``docstring`` that says why its module is over the limit, or None."""
    for paragraph in (docstring or "").split("\n\n"):
        if re.search(rf"\b{MAX_LINES}\b", paragraph) and re.search(r"\b(because|why)\b", paragraph, re.IGNORECASE):
            return paragraph
    return None


def test_no_module_over_400_lines_without_a_reason():
    unexplained = []
    for path in module_files():
        source = path.read_text()
        lines = source.count("\n")
        if lines > MAX_LINES and size_reason(ast.get_docstring(ast.parse(source))) is None:
            unexplained.append(f"{path.relative_to(ROOT)}: {lines} lines; split it by concern, or say why not in "
                               f"its docstring (\"Over {MAX_LINES} lines because ...\")")
    assert not unexplained, "\n".join(unexplained)


def test_size_reason_needs_the_limit_and_a_reason():
    assert size_reason("Scores.\n\nOver 400 lines because it is one concern.") is not None
    assert size_reason("Why one module of ~450 lines (over the house's ~400): one concern.") is not None
    assert size_reason("Scores.\n\nIt is one concern, because the parts share helpers.") is None
    assert size_reason("Scores over 400 points.") is None
    assert size_reason(None) is None


def readme_layout():
    """The README's layout section: the module paths its lines start with, in order."""
    found = re.search(r"<!-- layout -->\n(.*?)<!-- /layout -->", (ROOT / "README.md").read_text(), flags=re.S)
    assert found, "README.md has no <!-- layout --> section"
    return re.findall(r"^- `raysweep/([\w/.]+)`", found.group(1), flags=re.M)


def layout_entry(path):
    """How the README names a module file: ``synth/catalog.py``; a subpackage's ``__init__.py`` by its folder."""
    relative = path.relative_to(PACKAGE)
    return f"{relative.parent}/" if path.name == "__init__.py" and path.parent != PACKAGE else str(relative)


def test_readme_layout_lists_every_module_in_data_flow_order():
    listed = readme_layout()
    actual = set(map(layout_entry, module_files()))
    missing, stale = sorted(actual - set(listed)), sorted(set(listed) - actual)
    assert not missing and not stale, f"README layout: modules without a line: {missing}; lines of no module: {stale}"
    stages = [STAGE_OF[entry.split("/")[0].removesuffix(".py")] for entry in listed]
    out_of_order = [entry for entry, before, stage in zip(listed[1:], stages, stages[1:]) if stage < before]
    assert not out_of_order, f"README layout: not in data-flow order ({FLOW}): {', '.join(out_of_order)}"
