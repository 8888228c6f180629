"""Cancelling kills the child and its workers and leaves no output; so does QGIS dying."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
from helpers import QGIS_PROCESS, alive, geosr_children, leftovers, needs, wait_until
from qgis.core import QgsProcessingException, QgsProcessingFeedback


@pytest.fixture()
def provider(qgis_processing, geosr_python, monkeypatch):
    import geosr_qgis

    monkeypatch.setenv("GEOSR_PYTHON", geosr_python)
    plugin = geosr_qgis.classFactory(None)
    plugin.initProcessing()
    yield plugin.provider
    plugin.unload()


def run_until_canceled(algorithm_id: str, parameters: dict, feedback) -> None:
    """Run the algorithm in process; it must end with the cancel error."""
    import processing

    with pytest.raises(QgsProcessingException, match="canceled"):
        processing.run(algorithm_id, parameters, feedback=feedback)


def canceling_feedback(marker: str) -> tuple[QgsProcessingFeedback, dict[str, list]]:
    """A feedback that cancels at the first progress between 0 and 100 %; ``seen`` keeps the
    progress values and the geosr children (command line holding ``marker``) alive then."""
    feedback = QgsProcessingFeedback()
    seen: dict[str, list] = {"progress": [], "children": []}

    def on_progress(value: float) -> None:
        seen["progress"].append(value)
        if 0 < value < 100 and not feedback.isCanceled():
            seen["children"] = geosr_children(marker)
            feedback.cancel()

    feedback.progressChanged.connect(on_progress)
    return feedback, seen


def large_upscale(scenes, models, output) -> dict:
    """geosr:upscale parameters for a run that lasts long enough to be canceled."""
    return {
        "INPUT": str(scenes["landsat8_large"]),
        "MODEL": str(models["bands4"]),
        "CHUNK_SIZE": 64,
        "DEVICE": "cpu",
        "OUTPUT": str(output),
    }


def test_cancel_mid_run_kills_the_child_and_leaves_no_output(provider, scenes, models, work):
    output = work / "cancelled.tif"
    feedback, seen = canceling_feedback(str(output))
    run_until_canceled("geosr:upscale", large_upscale(scenes, models, output), feedback)
    assert seen["children"], f"no geosr child was running at the cancel ({seen['progress']})"
    for pid in seen["children"]:
        assert not alive(pid), f"child {pid} survived the cancel"
    assert geosr_children(str(output)) == []
    assert leftovers(output) == []


def test_output_that_existed_survives_a_cancel(provider, scenes, models, work):
    """A file the user already had at OUTPUT is replaced only by a successful run."""
    output = work / "existing.tif"
    output.write_bytes(b"not touched")
    feedback, _ = canceling_feedback(str(output))
    run_until_canceled("geosr:upscale", large_upscale(scenes, models, output), feedback)
    assert output.read_bytes() == b"not touched"
    assert leftovers(output) == [output]


def test_child_exits_when_qgis_dies(qgis_env, scenes, models, work):
    """SIGKILL to qgis_process closes the child's stdin; --exit-on-stdin-eof makes it exit."""
    output = work / "orphan.tif"
    qgis = subprocess.Popen(
        [
            QGIS_PROCESS,
            "run",
            "geosr:upscale",
            f"--INPUT={scenes['landsat8_large']}",
            f"--MODEL={models['bands4']}",
            "--CHUNK_SIZE=32",
            "--DEVICE=cpu",
            f"--OUTPUT={output}",
        ],
        env=qgis_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # wait until the child has started and reported progress (qgis_process prints "0...")
        assert wait_until(lambda: geosr_children(str(output)), timeout=120), "no child started"
        time.sleep(2.0)  # let it get going (importing torch, or upscaling)
        children = geosr_children(str(output))
        assert children, "the child finished before qgis_process could be killed"
    finally:
        qgis.send_signal(signal.SIGKILL)
        qgis.wait()
    assert wait_until(lambda: not any(alive(pid) for pid in children), timeout=30), (
        f"geosr child {children} outlived qgis_process"
    )
    assert geosr_children(str(output)) == []
    assert leftovers(output) == []


@needs("train")
def test_cancel_training_leaves_no_model_and_no_run_folder(provider, scenes, work):
    output = work / "cancelled-model.safetensors"
    feedback, seen = canceling_feedback(str(work / ".geosr-train-"))
    parameters = {
        "INPUT": [str(scenes["landsat8_large"])],
        "SCALE": "2",
        "STEPS": 1000,
        "BATCH_SIZE": 2,
        "PATCH_SIZE": 32,
        "DEVICE": "cpu",
        "OUTPUT": str(output),
    }
    run_until_canceled("geosr:train", parameters, feedback)
    assert seen["children"], "no geosr.train child was running at the cancel"
    for pid in seen["children"]:
        assert not alive(pid), f"child {pid} survived the cancel"
    assert not output.exists()
    assert not list(work.glob(".geosr-train-*")), "the training folder was left behind"
