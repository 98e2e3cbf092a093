"""A Gradio page that translates with a saved model and shows its attention, and the Space folder that serves it.

Needs the `space` extra (`pip install "hf_simple_s2s[space]"`: gradio, plotly).
"""
