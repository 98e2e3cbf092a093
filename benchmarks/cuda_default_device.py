"""A pytest plugin for `benchmarks/gpu_check.sh`: runs the test suite with CUDA as torch's default device.

`pytest -p benchmarks.cuda_default_device tests` makes every model and tensor the tests create (without naming a
device) live on the GPU, so the unchanged tests exercise the CUDA paths.
"""

import torch


def pytest_configure(config):
    if not torch.cuda.is_available():
        raise RuntimeError("benchmarks.cuda_default_device: torch does not see a CUDA device")
    torch.set_default_device("cuda")
