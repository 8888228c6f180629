"""Setting up geosr without a terminal: Plugins > geosr > Set up geosr... and ``geosr:setup``.

Everything is real: the interpreters found on this machine, ``python -m venv``, pip, QGIS. The
slow tests install a geosr wheel (GEOSR_WHEEL, else the newest dist/geosr-*.whl) into a fresh
QGIS profile through qgis_process, run geosr:upscale with that environment, then drive the
desktop path (menu entry, dialog, Run) against the same environment.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from pathlib import Path

import pytest
from geosr_qgis import environment, setup_env
from geosr_qgis.setup_env import SetupError
from helpers import (
    RecordingFeedback,
    alive,
    assert_same_georeference,
    geosr_children,
    geosr_wheel,
    qgis_process,
    require,
    run_json,
    upscale,
)
from qgis.core import (
    Qgis,
    QgsApplication,
    QgsProcessingException,
    QgsSettings,
)
from qgis.PyQt.QtCore import QSettings, QTimer
from qgis.PyQt.QtWidgets import QApplication, QTextEdit

#: Seconds for a first install (PyTorch is large; 2-3 minutes from a local index here).
INSTALL_TIMEOUT = 1800


def version_of(python: str) -> tuple[int, ...]:
    """What ``python`` reports, asked without the code under test (also works on Python 2)."""
    done = subprocess.run(
        [python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return tuple(int(part) for part in done.stdout.strip().split("."))


def old_pythons() -> list[str]:
    """Interpreters older than 3.10 on this machine (pyenv's versions, system folders, PATH)."""
    patterns = [
        os.path.expanduser("~/.pyenv/versions/*/bin/python"),
        "/usr/bin/python2*",
        "/usr/bin/python3.[0-9]",
        "/usr/local/bin/python3.[0-9]",
    ]
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        patterns += [os.path.join(folder, "python3.[0-9]"), os.path.join(folder, "python2*")]
    old = []
    for path in dict.fromkeys(p for pattern in patterns for p in sorted(glob.glob(pattern))):
        try:
            if version_of(path) < (3, 10):
                old.append(path)
        except (OSError, ValueError, subprocess.SubprocessError):
            continue  # e.g. a pyenv shim for a version that is not active
    return old


def shown_algorithm_dialog():
    """The Processing dialog on screen (offscreen, no window is "active": no activeModalWidget)."""
    from processing.gui.AlgorithmDialog import AlgorithmDialog

    shown = [w for w in QApplication.topLevelWidgets() if isinstance(w, AlgorithmDialog)]
    return next((dialog for dialog in shown if dialog.isVisible()), None)


def when_dialog_shown(action, tries: int = 100) -> None:
    """Call ``action(dialog)`` from the event loop once the Processing dialog is on screen
    (``action(None)`` if it is not after ``tries`` looks 50 ms apart). Call it before what opens
    the dialog: that blocks in the dialog's own event loop until the dialog closes."""

    def look(left: int) -> None:
        dialog = shown_algorithm_dialog()
        if dialog is None and left:
            QTimer.singleShot(50, lambda: look(left - 1))
        else:
            action(dialog)

    QTimer.singleShot(0, lambda: look(tries))


@pytest.fixture()
def plugin(qgis_processing, qgis_iface, monkeypatch):
    """The plugin as QGIS desktop loads it, with (pytest-qgis's) iface: provider and menu."""
    import geosr_qgis
    from qgis.gui import QgsBrowserGuiModel

    # pytest-qgis's stub iface answers browserModel() with a MagicMock, which the Processing
    # dialog's file widgets refuse; QGIS desktop gives them this model.
    browser = QgsBrowserGuiModel()
    monkeypatch.setattr(qgis_iface, "browserModel", lambda: browser, raising=False)
    loaded = geosr_qgis.classFactory(qgis_iface)
    loaded.initGui()
    assert loaded.provider is not None
    yield loaded
    loaded.unload()
    assert loaded.setup_action is None


# ---------------------------------------------------------------- finding a Python


def test_find_pythons_returns_working_interpreters_newest_first():
    found = setup_env.find_pythons()
    require(bool(found), "no Python 3.10 or newer on PATH")
    for info in found:
        assert version_of(info.executable) == info.version
        assert info.version >= (3, 10)
        assert info.can_make_venvs
    binaries = [os.path.realpath(info.base_executable) for info in found]
    assert len(set(binaries)) == len(binaries), "one interpreter listed twice"
    preferred = [info.version for info in found if info.version[:2] <= (3, 13)]
    assert preferred == sorted(preferred, reverse=True)


def test_find_pythons_skips_shims_old_and_non_python_candidates(tmp_path):
    good = setup_env.find_pythons()
    require(bool(good), "no Python 3.10 or newer on PATH")
    folder = tmp_path / "bin"
    folder.mkdir()
    shim = folder / "python3.13"  # like a pyenv shim of a version that is not active
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.13: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    (folder / "python3.12").write_text("print('no exec bit')\n")
    (folder / "python3.11").symlink_to("/bin/echo")  # runs, but is no Python
    old = old_pythons()
    if old:
        (folder / "python3").symlink_to(old[0])
    (folder / "python3.10").symlink_to(good[0].executable)
    found = setup_env.find_pythons(str(folder))
    assert [info.path for info in found] == [str(folder / "python3.10")]
    assert found[0].version == good[0].version


def test_inspect_python_describes_the_interpreter_it_runs():
    info = setup_env.inspect_python(sys.executable)  # the test venv: a venv of QGIS's Python
    assert info.version == tuple(sys.version_info[:3])
    assert info.base_prefix == sys.base_prefix
    assert os.path.realpath(info.base_executable) == os.path.realpath(sys._base_executable)


def test_python_older_than_3_10_is_refused():
    old = old_pythons()
    if not old:
        pytest.skip("no Python older than 3.10 on this machine")
    for path in old:
        version = ".".join(map(str, version_of(path)))
        with pytest.raises(SetupError) as raised:
            setup_env.check_python(path)
        message = str(raised.value)
        assert f"{path} is Python {version}, but geosr needs Python 3.10 or newer" in message
        assert "\n" not in message


def test_a_file_that_is_not_a_python_is_refused(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    script = tmp_path / "tool"
    script.write_text("#!/bin/sh\necho hello\n")
    script.chmod(0o755)
    expected = {
        text: "is not an executable file",
        script: "is not a Python interpreter",
        tmp_path: "is a folder",
        tmp_path / "missing": "does not exist",
    }
    for path, problem in expected.items():
        with pytest.raises(SetupError) as raised:
            setup_env.check_python(path)
        message = str(raised.value)
        assert message.startswith(f"{path} {problem}"), message
        assert "Python 3.10 or newer" in message  # the fix
        assert "\n" not in message


# ---------------------------------------------------------------- environment and pip


def test_environment_goes_to_the_qgis_profile(plugin):
    profile = Path(QgsApplication.qgisSettingsDirPath())
    assert setup_env.venv_path() == profile / "geosr" / "venv"
    assert setup_env.venv_path("/p") == Path("/p/geosr/venv")
    assert setup_env.venv_python("/e") == Path("/e/bin/python")
    algorithm = QgsApplication.processingRegistry().createAlgorithmById("geosr:setup")
    assert algorithm.parameterDefinition("ENV_DIR").defaultValue() == str(setup_env.venv_path())


def test_pip_command_for_a_wheel_and_for_the_index(tmp_path):
    wheel = tmp_path / "geosr-1.2.3-py3-none-any.whl"
    wheel.write_bytes(b"")  # only its name is checked before pip runs
    assert setup_env.pip_install_command("/env/bin/python", str(wheel)) == [
        "/env/bin/python",
        "-m",
        "pip",
        "install",
        "--upgrade",
        "--no-input",
        "--disable-pip-version-check",
        "--progress-bar",
        "off",
        str(wheel),
    ]
    command = setup_env.pip_install_command(
        "/env/bin/python", None, "--index-url 'file:///my index' --pre"
    )
    assert command[-4:] == ["--index-url", "file:///my index", "--pre", "geosr"]
    with pytest.raises(SetupError, match="check their quotes"):
        setup_env.pip_install_command("/env/bin/python", None, "--index-url 'unclosed")
    other = tmp_path / "numpy-2.0.0-cp311-cp311-linux_x86_64.whl"
    other.write_bytes(b"")
    with pytest.raises(SetupError, match="is not a geosr wheel"):
        setup_env.pip_install_command("/env/bin/python", str(other))
    with pytest.raises(SetupError, match="does not exist"):
        setup_env.pip_install_command("/env/bin/python", str(tmp_path / "geosr-9-py3-none-any.whl"))


def test_quoted_pip_options_lose_their_quotes_on_windows_too():
    """Windows: quotes go, backslashes of folders stay (shlex's posix=False kept the quotes)."""
    typed = r'"--index-url" "C:\my dir\wheels" --find-links="D:\wheels\" --pre'
    assert setup_env.split_pip_options(typed, windows=True) == [
        "--index-url",
        r"C:\my dir\wheels",
        "--find-links=D:\\wheels\\",
        "--pre",
    ]
    typed = r"--index-url 'file:///my index' --find-links=/my\ wheels"
    expected = ["--index-url", "file:///my index", "--find-links=/my wheels"]
    assert setup_env.split_pip_options(typed, windows=False) == expected
    with pytest.raises(SetupError, match="check their quotes"):
        setup_env.split_pip_options('--index-url "C:\\unclosed', windows=True)


def test_pip_log_hides_the_index_url_secrets(monkeypatch):
    """Userinfo (a password holding "@") and the query's token, in the logged pip command, in
    pip's own lines and in the error. A real pip, with no configuration of its own (no config
    file, no PIP_* variables), against a port where nothing listens; a dry run besides."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    python = setup_env.check_python(sys.executable)
    index = "http://mirror-user:hunter@2@127.0.0.1:9/my simple?token=SECRET-TOKEN"
    options = f"--isolated --dry-run --retries 0 --timeout 1 --index-url '{index}'"
    lines: list[str] = []
    with pytest.raises(SetupError) as raised:
        setup_env.install_into(python, None, options, lines.append, lambda *_: None, lambda: False)
    logged = "\n".join([*lines, str(raised.value)])
    for secret in ("mirror-user", "hunter", "@2", "SECRET-TOKEN"):
        assert secret not in logged
    assert f" --index-url 'http://127.0.0.1:9/my simple?…' {setup_env.PACKAGE}" in lines[0]
    # pip's own echo masks the password but prints the query, spaces and all
    assert "Looking in indexes: http://127.0.0.1:9/my simple?…" in lines


def test_setup_refuses_bad_input_before_making_anything(plugin, setting, tmp_path):
    import processing

    script = tmp_path / "tool"
    script.write_text("#!/bin/sh\necho hello\n")
    script.chmod(0o755)
    not_geosr = tmp_path / "numpy-2.0.0-py3-none-any.whl"
    not_geosr.write_bytes(b"")
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "mine.txt").write_text("keep me\n")
    env_dir = tmp_path / "env"
    cases = [
        ({"PYTHON": str(script), "ENV_DIR": str(env_dir)}, "is not a Python interpreter"),
        ({"WHEEL": str(not_geosr), "ENV_DIR": str(env_dir)}, "is not a geosr wheel"),
        ({"ENV_DIR": str(occupied)}, "exists and is not a Python environment"),
    ]
    for parameters, problem in cases:
        with pytest.raises(QgsProcessingException, match=problem):
            processing.run("geosr:setup", parameters)
    assert not env_dir.exists()
    assert [path.name for path in occupied.iterdir()] == ["mine.txt"]
    assert QgsSettings().value(environment.SETTING_QNAME, None) == setting


def test_cancel_stops_pip_and_leaves_the_setting_alone(plugin, setting, tmp_path):
    """Cancel while pip runs (an index install: no wheel needed): pip is killed at once."""
    import processing

    env_dir = tmp_path / "env"
    seen: dict[str, list] = {"pip": []}

    def on_console(line: str) -> None:
        if line.startswith("$ ") and " -m pip install " in line:
            seen["started"] = []
        elif "started" in seen and not feedback.isCanceled():
            seen["pip"] = geosr_children(str(env_dir))  # pip's command line holds env_dir
            feedback.cancel()

    feedback = RecordingFeedback(on_console)
    with pytest.raises(QgsProcessingException, match="canceled"):
        processing.run("geosr:setup", {"ENV_DIR": str(env_dir)}, feedback=feedback)
    assert seen["pip"], "pip was not running at the cancel: " + " | ".join(feedback.console)
    for pid in seen["pip"]:
        assert not alive(pid), f"pip ({pid}) survived the cancel"
    assert geosr_children(str(env_dir)) == []
    assert QgsSettings().value(environment.SETTING_QNAME, None) == setting


def test_menu_entry_opens_the_setup_dialog(plugin):
    from processing.gui.AlgorithmDialog import AlgorithmDialog

    action = plugin.setup_action
    assert action.text() == "Set up geosr\u2026"
    seen = []

    def close_dialog(dialog) -> None:
        seen.append((type(dialog), dialog.algorithm().id() if dialog else None))
        if dialog is not None:
            dialog.reject()

    when_dialog_shown(close_dialog)
    action.trigger()  # execAlgorithmDialog: returns once the dialog is closed
    assert seen == [(AlgorithmDialog, "geosr:setup")]


# ---------------------------------------------------------------- a real install (slow)


@pytest.fixture(scope="module")
def wheel() -> Path:
    path = geosr_wheel()
    require(
        path is not None and path.is_file(),
        "no geosr wheel to install: set GEOSR_WHEEL=/path/to/geosr-<version>-py3-none-any.whl "
        "or run 'make dist' (writes dist/geosr-<version>-py3-none-any.whl)",
    )
    return path


@pytest.fixture(scope="module")
def installed(qgis_env, wheel, tmp_path_factory) -> dict:
    """geosr:setup run by qgis_process in a fresh QGIS profile, with no GEOSR_PYTHON set."""
    home = tmp_path_factory.mktemp("fresh-profile")
    env = dict(qgis_env, XDG_DATA_HOME=str(home / "data"))
    env.pop("GEOSR_PYTHON", None)
    enable = qgis_process(env, "plugins", "enable", "geosr_qgis")
    assert enable.returncode == 0, enable.stdout + enable.stderr
    code, result, stderr = run_json(env, "geosr:setup", timeout=INSTALL_TIMEOUT, WHEEL=wheel)
    assert code == 0, stderr[-3000:] + str(result.get("log", ""))[-3000:]
    profile = home / "data" / "QGIS" / "QGIS3" / "profiles" / "default"
    env_dir = profile / "geosr" / "venv"
    return {
        "env": env,
        "profile": profile,
        "env_dir": env_dir,
        "python": env_dir / "bin" / "python",
        "results": result["results"],
    }


def bundled_sample(python: Path) -> Path:
    """The sample scene inside the installed wheel."""
    done = subprocess.run(
        [str(python), "-c", "import geosr, pathlib; print(pathlib.Path(geosr.__file__).parent)"],
        capture_output=True,
        text=True,
        cwd="/",  # never the checkout: geosr must come from the environment
        check=True,
    )
    return Path(done.stdout.strip()) / "sample" / "naip_sample.tif"


@pytest.mark.slow
def test_setup_installs_the_wheel_into_a_fresh_profile(installed, wheel):
    """geosr from the wheel file; its dependencies from pip's configured index."""
    assert installed["results"]["GEOSR_PYTHON"] == str(installed["python"])
    assert installed["results"]["GEOSR_VERSION"] == wheel.name.split("-")[1]
    ini = QSettings(str(installed["profile"] / "QGIS" / "QGIS3.ini"), QSettings.IniFormat)
    assert ini.value(environment.SETTING_QNAME) == str(installed["python"])
    # geosr runs from the new environment (site-packages), not from a source checkout
    sample = bundled_sample(installed["python"])
    assert sample.is_relative_to(installed["env_dir"]), sample
    assert sample.is_file()


@pytest.mark.slow
def test_upscale_runs_with_the_environment_set_up(installed, gdal, tmp_path):
    """qgis_process in that profile, GEOSR_PYTHON unset: the setting alone finds geosr."""
    sample = bundled_sample(installed["python"])
    # no MODEL: the bundled model, which is x4
    upscale(installed["env"], gdal, sample, tmp_path / "naip_x4.tif", 4, DEVICE="cpu")


@pytest.mark.slow
def test_menu_dialog_updates_the_environment_and_upscale_uses_it(
    installed, wheel, plugin, setting, qgis_iface, gdal, tmp_path
):
    """The desktop path: menu entry, dialog, Run (in the background), log, setting, run."""
    import processing

    finished = []

    def run_in_dialog(dialog) -> None:
        if dialog is None:
            return  # `finished` stays empty: the assertion below says so

        def done(ok, results):
            log = dialog.findChild(QTextEdit, "txtLog")
            finished.append((ok, dict(results), log.toPlainText() if log else ""))
            dialog.close()

        dialog.algorithmFinished.connect(done)
        QTimer.singleShot(INSTALL_TIMEOUT * 1000, dialog.reject)  # never hang the suite
        dialog.setParameters({"WHEEL": str(wheel), "ENV_DIR": str(installed["env_dir"])})
        dialog.runAlgorithm()

    when_dialog_shown(run_in_dialog)
    plugin.setup_action.trigger()
    assert finished, "the set-up dialog did not show, or closed before the set-up finished"
    ok, results, log = finished[0]
    assert ok, log[-3000:]
    python = str(installed["python"])
    assert results["GEOSR_PYTHON"] == python
    assert "Reusing the environment" in log
    assert "Requirement already satisfied" in log  # pip's own log, shown in the dialog
    assert f"geosr {results['GEOSR_VERSION']} is installed" in log
    assert any(
        f"geosr {results['GEOSR_VERSION']} is set up" in message
        for message in qgis_iface.messageBar().get_messages(Qgis.Success)
    )
    assert QgsSettings().value(environment.SETTING_QNAME) == python
    assert environment.resolve_python() == python  # the setting wins over GEOSR_PYTHON

    sample = bundled_sample(installed["python"])
    output = tmp_path / "in_qgis_x4.tif"
    feedback = RecordingFeedback()
    processing.run(
        "geosr:upscale",
        {"INPUT": str(sample), "DEVICE": "cpu", "OUTPUT": str(output)},
        feedback=feedback,
    )
    assert feedback.commands[0].startswith(python + " -m geosr upscale"), feedback.commands
    assert_same_georeference(gdal, sample, output, 4)
