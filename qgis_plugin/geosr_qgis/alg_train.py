"""geosr:train - "Train super-resolution model" on the user's own rasters."""

from __future__ import annotations

import os
import shutil
import tempfile

from qgis.core import QgsProcessingException, QgsProcessingParameterFileDestination

from .algorithm import GeosrAlgorithm, tr
from .environment import resolve_python
from .runner import run_geosr

STAGES = ("pretrain", "gan")
MODEL_EXTENSION = ".safetensors"


class TrainAlgorithm(GeosrAlgorithm):
    """Run ``python -m geosr.train`` and copy its best checkpoint to the chosen file."""

    INPUT = "INPUT"
    BANDS = "BANDS"
    SCALE = "SCALE"
    STAGE = "STAGE"
    STEPS = "STEPS"
    INIT = "INIT"
    DEVICE = "DEVICE"
    BATCH_SIZE = "BATCH_SIZE"
    PATCH_SIZE = "PATCH_SIZE"
    OUTPUT = "OUTPUT"

    NAME = "train"
    DISPLAY_NAME = "Train super-resolution model"
    HELP = (
        "Trains a geosr super-resolution model on your own rasters: each raster is "
        "downsampled by the scale factor and the network learns to restore it.\n\n"
        "Train in two stages: 'pretrain' (pixel loss; stable, gives a sharp but smooth "
        "model), then 'gan' started from the pretrained model (adds adversarial and "
        "perceptual losses for realistic texture). The best checkpoint is written as one "
        ".safetensors file that 'Super-resolve raster' and 'Evaluate model against bicubic' "
        "accept.\n\n"
        "The work runs in geosr's own Python environment (a GPU is used when geosr's PyTorch "
        "has one). Progress shows the training steps; cancelling stops training and writes no "
        "model."
    )

    def initAlgorithm(self, config=None):  # noqa: N802 - QGIS API
        self.add_rasters(
            self.INPUT,
            "Training rasters",
            "High-resolution rasters to learn from (files GDAL reads), all with the same "
            "bands in the same order as the rasters the model will be used on.",
        )
        self.add_number(
            self.BANDS,
            "Bands",
            "Number of bands of a multiband model (it then accepts only rasters with that "
            "many bands, and learns from the relations between them). Empty: a band-shared "
            "model that processes each band alone and so accepts any band count.",
            minimum=1,
        )
        # SCALE, DEVICE: as geosr declares them
        self.add_declared()
        self.add_choice(
            self.STAGE,
            "Stage",
            STAGES,
            "'pretrain': pixel loss only, start here. 'gan': adversarial fine-tuning; set "
            "'Initial model' to the pretrained model.",
            default="pretrain",
        )
        self.add_number(
            self.STEPS,
            "Training steps",
            "Number of optimisation steps (batches). More steps train longer and better.",
            minimum=1,
            default=1000,
        )
        self.add_model_file(
            self.INIT,
            "Initial model (.safetensors)",
            "Start from this model's weights instead of random ones (for the 'gan' stage: "
            "the model from 'pretrain').",
        )
        self.add_number(
            self.BATCH_SIZE,
            "Batch size (patches per step)",
            "Patches per optimisation step. Smaller needs less memory. Empty: geosr's default "
            "(16).",
            minimum=1,
            advanced=True,
        )
        self.add_number(
            self.PATCH_SIZE,
            "Patch size (high-resolution pixels)",
            "Side of the training patches, in pixels of the training rasters. Empty: geosr's "
            "default (96).",
            minimum=8,
            advanced=True,
        )
        self.add(
            QgsProcessingParameterFileDestination(
                self.OUTPUT,
                tr("Trained model"),
                fileFilter=tr("geosr models (*.safetensors)"),
            ),
            "Where to write the best checkpoint of the run (.safetensors). An existing file "
            "is replaced only when training succeeds.",
        )

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API
        sources = self.raster_sources(parameters, self.INPUT, context, "training raster")
        output = self.output_path(parameters, self.OUTPUT, context)
        if not output.lower().endswith(MODEL_EXTENSION):
            output += MODEL_EXTENSION

        args = ["-m", "geosr.train", "--data", *sources]
        args += ["--stage", self.parameterAsEnumString(parameters, self.STAGE, context)]
        args += ["--steps", str(self.parameterAsInt(parameters, self.STEPS, context))]
        args += self.integer_args(
            parameters,
            context,
            {self.BANDS: "--bands", self.BATCH_SIZE: "--batch-size", self.PATCH_SIZE: "--patch"},
        )
        init = self.parameterAsFile(parameters, self.INIT, context)
        if init:
            args += ["--init", init]
        args += self.declared_args(parameters, context)  # --scale, --device

        # Not self.run_command(): the interpreter is checked before the work folder is made.
        python = resolve_python()
        folder = os.path.dirname(output)
        os.makedirs(folder, exist_ok=True)
        # Train into a hidden folder beside the output, so the final move is a rename and a
        # failed or cancelled run leaves nothing behind (the folder is always removed).
        workdir = tempfile.mkdtemp(prefix=".geosr-train-", dir=folder)
        try:
            args += ["--out", workdir, "--progress", "jsonl"]
            done = run_geosr(python, args, feedback, outputs=[output], what="geosr train")
            best = done.get("output") or os.path.join(workdir, "best.safetensors")
            if not os.path.isfile(best):
                raise QgsProcessingException(
                    tr("geosr train finished but wrote no best.safetensors.")
                )
            os.replace(best, output)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        return {self.OUTPUT: output}
