"""A pytest plugin for `benchmarks/gpu_check.sh`: runs the test suite with CUDA as torch's default device.

`pytest -p benchmarks.cuda_default_device tests` makes every model and tensor the tests create (without naming a
device) live on the GPU, so the unchanged tests exercise the CUDA paths.
"""

import pytest
import torch

# torch 2.11's TorchScript ONNX exporter crashed the process (segmentation fault) with CUDA as the default device.
SKIPPED_FILES = {
    "test_export.py": "ONNX export is a CPU path; its exporter segfaulted with CUDA as the default device"
}


def pytest_configure(config):
    if not torch.cuda.is_available():
        raise RuntimeError("benchmarks.cuda_default_device: torch does not see a CUDA device")
    torch.set_default_device("cuda")
    # Collators then make their batches on the GPU already, and CUDA tensors cannot be pinned (the Trainer asks for
    # pinned memory whenever CUDA is there).
    data_loader_init = torch.utils.data.DataLoader.__init__

    def init_without_pinning(self, *args, **kwargs):
        kwargs["pin_memory"] = False
        data_loader_init(self, *args, **kwargs)

    torch.utils.data.DataLoader.__init__ = init_without_pinning


def pytest_collection_modifyitems(config, items):
    for item in items:
        reason = SKIPPED_FILES.get(item.path.name)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))
