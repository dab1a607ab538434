"""IKC Studio, the Gradio app: one module per concern (settings, inputs, models, session, figures,
viewer, one per tab, api) and `page`, which builds the whole page. `app.py` at the repository root serves it."""
