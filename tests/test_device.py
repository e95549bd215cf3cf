"""resolve_device: auto/cpu/cuda/cuda:N with CUDA availability faked by monkeypatch."""

import pytest
import torch

from nir.device import resolve_device
from nir.errors import NirInputError


def fake_cuda(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


@pytest.mark.parametrize(("count", "expected"), [(0, "cpu"), (1, "cuda"), (2, "cuda")])
def test_auto_follows_cuda_availability(monkeypatch, count, expected):
    fake_cuda(monkeypatch, count)
    assert resolve_device("auto") == torch.device(expected)


def test_cpu_is_cpu_even_with_a_gpu(monkeypatch):
    fake_cuda(monkeypatch, 1)
    assert resolve_device("cpu") == torch.device("cpu")


def test_cuda_and_index(monkeypatch):
    fake_cuda(monkeypatch, 2)
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device(" CUDA:1 ") == torch.device("cuda", 1)


def test_cuda_without_gpu_is_a_clear_input_error(monkeypatch):
    fake_cuda(monkeypatch, 0)
    with pytest.raises(NirInputError, match=r"^--device: cuda requested but CUDA is not avail"):
        resolve_device("cuda")
    with pytest.raises(NirInputError, match="cuda:0 requested but CUDA is not available"):
        resolve_device("cuda:0")


def test_cuda_index_past_visible_devices(monkeypatch):
    fake_cuda(monkeypatch, 1)
    with pytest.raises(NirInputError, match=r"cuda:1 requested but only 1 CUDA device"):
        resolve_device("cuda:1")


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "cuda:-1", "", "mps"])
def test_unknown_names_are_rejected(name):
    with pytest.raises(NirInputError, match="unknown device"):
        resolve_device(name)


def test_real_machine_auto_matches_torch():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
