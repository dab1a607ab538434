"""IKC Studio: blind super-resolution with Iterative Kernel Correction, step by step, in the browser.

    python app.py     # serves http://127.0.0.1:7860; GRADIO_SERVER_NAME / GRADIO_SERVER_PORT change that

Tabs: Restore (blind), Degradation lab (ground truth known), Kernel-mismatch lab (the paper's Figure 2), About the
model. Named API endpoints: /degrade and /super_resolve. The app lives in the `studio` package; all model work
goes through the `ikc` package. Importing this file does nothing heavy: the models load when it is run.
"""
from studio.page import serve

if __name__ == "__main__":
    serve()
