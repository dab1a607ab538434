"""The whole page: status, the tabs with their explanations, the API, and how it is served."""
from __future__ import annotations

import sys

import gradio as gr

import ikc
from ikc.checkpoint import CHECKPOINT_DIR

from .api import build_api
from .cache import use_atomic_image_cache
from .lab import build_lab
from .mismatch import build_mismatch
from .models import checkpoint_status, example_files, load_models, model_summary
from .restore import build_restore
from .settings import (
    MAX_RESULT_PIXELS,
    MAX_RESULT_SIDE,
    MAX_SESSIONS,
    MAX_UPLOAD,
    QUEUE_SIZE,
    REGION,
    RESULTS,
    SESSION_TTL,
)

EXPLAIN_KERNEL = """\
**The blur kernel.** No camera records a perfectly sharp picture: every point of light spreads into a
small blob (lens, focus, shake, and the shrinking of the photo). That blob is the *blur kernel*. The kernel
pictures show it as a 21x21 heat map: a tight bright dot means little blur, a wide glow means strong blur.
For the Gaussian blurs IKC is trained on, one number describes it: the *width* (sigma, in pixels of the
large image). The *noise level* is the grain on top, on the 0-255 scale.
"""


EXPLAIN_STEPS = """\
**What each step does.** Step 0: the *Predictor* looks at the photo and guesses the kernel; *SFTMD*
enlarges the photo, undoing exactly the blur it is told about. Steps 1, 2, ...: the *Corrector* looks at the
latest result, judges whether it looks too soft or too sharp, and nudges the kernel estimate; SFTMD enlarges
again with the new estimate. The width usually settles after a few steps. Sometimes an earlier step looks
best: use the slider (an earlier step's image is rendered the first time you look at it). The before/after
slider compares plain bicubic enlargement with the final step.
"""


EXPLAIN_MISMATCH = """\
**Why a wrong kernel hurts.** SFTMD trusts the kernel it is given. Told a kernel that is *too small*, it
removes too little blur: the result stays soft (over-smoothing). Told one that is *too large*, it removes
blur that is not there: edges get halos and ripples (ringing). Between the two lies the true kernel, with
the best result. This is why IKC estimates the kernel, and corrects the estimate, before trusting it.
"""


EXPLAIN_NUMBERS = """\
**The numbers.** PSNR-Y (in dB, higher is better) and SSIM-Y (0 to 1, higher is better) compare the
brightness channel of a result with the sharp original, ignoring a border as wide as the scale. They need
the original, so only the labs show them. The networks were trained on round (isotropic) Gaussian blurs
within a range of widths and noise levels; outside it, IKC has to guess, and the labs say so.
"""


EXPLAIN_LIMITS = f"""\
**Limits.** Results have at most {MAX_RESULT_PIXELS:,} pixels ({MAX_RESULT_SIDE}x{MAX_RESULT_SIDE}, or
1024x576, ...): a larger input is downscaled first, and the page says so; or choose *{REGION.lower()}* and
click the photo to place a region, which is enlarged at its native resolution. A whole large photo at full
resolution: use the command line, `python -m ikc photo.jpg -o photo_x4.png --scale 4` (see the README).
Uploads up to {MAX_UPLOAD.upper()}. One model job runs at a time, others wait in a queue of {QUEUE_SIZE}. Your
results are deleted an hour after your last run. Nothing leaves this server.
"""


CSS = """
.step-caption { min-height: 3em; }
.busy img { opacity: 0.45; transition: opacity 0.2s; }
.busy label, .busy .label { animation: busy-pulse 1.2s ease-in-out infinite; }
@keyframes busy-pulse { 50% { opacity: 0.4; } }
.block .min_value, .block .max_value { font-size: var(--text-md) !important; }
@media (max-width: 700px) {
  .block:has(> .empty) { height: auto !important; min-height: 0 !important; }
  .block > .empty { height: 4.5em !important; min-height: 0 !important; }
}
"""


def build_app() -> gr.Blocks:
    """The whole page: status, four tabs with their explanations, and the API endpoints (loads the models)."""
    ikc.use_available_cpus()
    use_atomic_image_cache()
    scales, problems = load_models(ikc.available_scales(CHECKPOINT_DIR))
    for scale, problem in problems.items():
        print(f"IKC Studio: x{scale} cannot run: {problem}", file=sys.stderr)
    restore_examples, sharp_examples, known_widths = example_files()
    with gr.Blocks(title="IKC Studio", analytics_enabled=False, delete_cache=(SESSION_TTL, SESSION_TTL)) as demo:
        gr.Markdown("# IKC Studio\nBlind super-resolution with Iterative Kernel Correction (Gu et al., CVPR 2019): "
                    "enlarge a photo while estimating, step by step, how it was blurred. A small model trained on a "
                    "CPU: *About the model* compares it with the paper's.")
        gr.Markdown(checkpoint_status(scales, problems), elem_id="checkpoint-status")
        offered = scales or list(ikc.SCALES)
        with gr.Tabs(overflow_behavior="wrap", elem_id="tabs"):  # a phone shows every tab, on two rows
            with gr.Tab("Restore"):
                with gr.Accordion("How it works", open=False):
                    gr.Markdown(EXPLAIN_KERNEL + "\n" + EXPLAIN_STEPS + "\n" + EXPLAIN_LIMITS)
                build_restore(offered, restore_examples, known_widths)
            with gr.Tab("Degradation lab"):
                with gr.Accordion("How it works", open=False):
                    gr.Markdown("Here the blur is known: pick a sharp photo and a kernel, and compare IKC's estimate "
                                "with the truth at every step.\n\n" + EXPLAIN_KERNEL + "\n" + EXPLAIN_NUMBERS)
                build_lab(offered, sharp_examples)
            with gr.Tab("Kernel-mismatch lab"):
                with gr.Accordion("How it works", open=True):
                    gr.Markdown(EXPLAIN_MISMATCH + "\nThe photo is blurred with the true width and shrunk; SFTMD then "
                                "enlarges it once for each assumed width, without any estimation.")
                build_mismatch(offered, sharp_examples)
            with gr.Tab("About the model"):
                gr.Markdown(model_summary(RESULTS, offered), elem_id="model-summary")
        build_api()
    return demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)



def serve() -> None:
    """Build the page and serve it (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT choose where)."""
    build_app().launch(css=CSS, max_file_size=MAX_UPLOAD, show_error=True, state_session_capacity=MAX_SESSIONS)
