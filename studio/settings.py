"""The app's limits, defaults and places: one home for the numbers the page states."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ikc.checkpoint import shipped_folder

MAX_RESULT_SIDE = 768  # documented limit: inputs are downscaled so that the SR result has at most 768x768 px
MAX_RESULT_PIXELS = MAX_RESULT_SIDE ** 2  # the limit is this pixel count: 1024x576 fits as well
WHOLE, REGION = "The whole photo, downscaled to fit", "A region at full resolution"
PICKER_SIDE = 640  # px: the region picker shows the photo at most this large
MAX_UPLOAD = "25mb"
MAX_ITERATIONS, DEFAULT_ITERATIONS = 15, 7
MAX_NOISE = 25.0
MAX_BLOCK_NOISE = 75.0  # region-varying noise may go far beyond the training range, to show what it does
WIDTH_LIMITS = (0.2, 6.0)  # the labs offer widths beyond the training range on purpose
MISMATCH_OFFSETS = (-1.2, -0.9, -0.6, -0.3, 0.0, 0.3, 0.6, 0.9, 1.2)
ZOOM_SIDE = 64  # HR px of the lab's zoomed patch
MISMATCH_CROP = 96  # LR pixels: the mismatch lab works on the central crop so nine passes stay quick
SESSION_TTL = 3600  # seconds a session's results are kept
MAX_SESSIONS = 200  # sessions kept in memory at most; the least recently used are dropped first
QUEUE_SIZE = int(os.environ.get("IKC_QUEUE_SIZE") or 64)  # waiting jobs: a class of 30 pressing Run at once fits
EXAMPLE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
EXAMPLE_WIDTH, EXAMPLE_SCALE = 2.0, 4
# a preset that starts far off, at the scale whose shipped Corrector converges (x2; training/LOG.md, session 7)
CLASSROOM = {"photo": "astronaut", "scale": 2, "width": 1.6, "start": 0.5}
RESULTS = shipped_folder("results")  # the shipped weights' measured Gaussian8 numbers
TEMP = Path(tempfile.gettempdir())
RESULTS_DIR, EXAMPLES_DIR = TEMP / "ikc-studio-results", TEMP / "ikc-studio-examples"
