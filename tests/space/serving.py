"""The page served on a free localhost port in a thread of the test process, for gradio_client and the browser."""

import contextlib
import os
from collections.abc import Iterator

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
gradio = pytest.importorskip("gradio", reason="the page needs the space extra: pip install -e '.[space]'")

from hf_simple_s2s.inference.translate import load_translator  # noqa: E402
from hf_simple_s2s.space.app import build_demo  # noqa: E402


@contextlib.contextmanager
def served_page(model_dir, **build_kwargs) -> Iterator[str]:
    """Serve `build_demo` for the model saved in `model_dir`; yields the page's URL."""
    model, tokenizer = load_translator(str(model_dir))
    demo = build_demo({"float32": model}, tokenizer, **build_kwargs)
    _, url, _ = demo.launch(prevent_thread_lock=True, ssr_mode=False, quiet=True)  # the first free port from 7860
    try:
        yield url
    finally:
        demo.close()
