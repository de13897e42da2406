"""GPU facts for ``rayflow doctor`` come from NVML and package metadata; torch is never imported."""

from __future__ import annotations

import sys

import pytest

from rayflow.ml import gpu_support
from rayflow.ml.gpu_support import build_cuda, role_support


@pytest.mark.parametrize(("build", "expected"), [
    ("2.9.0+cu128", (12, 8)), ("2.4.1+cu118", (11, 8)), ("2.10.0+cu130", (13, 0)),
    ("2.13.0+cpu", None), ("2.13.0", None), ("2.5.0+rocm6.2", None)])
def test_build_cuda(build: str, expected: tuple[int, int] | None) -> None:
    assert build_cuda(build) == expected


def _torch_roles(monkeypatch: pytest.MonkeyPatch, build: str, driver: tuple[int, int] | None) -> dict[str, str]:
    monkeypatch.setitem(sys.modules, "torch", None)  # importing torch now raises: it must not be needed
    monkeypatch.setattr(gpu_support, "nvidia_gpus", lambda: ["NVIDIA H100 80GB HBM3"])
    monkeypatch.setattr(gpu_support, "driver_cuda", lambda: driver)
    monkeypatch.setattr(gpu_support, "torch_build", lambda: build)
    roles = {r.role: r for r in role_support()}
    torch_roles = {name: roles[name] for name in ("shots", "faces", "embed")}
    return {name: ("GPU " if r.usable else "CPU ") + r.detail for name, r in torch_roles.items()}


def test_a_cuda_build_the_driver_supports_uses_the_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    roles = _torch_roles(monkeypatch, "2.9.0+cu128", (12, 4))
    assert all(d.startswith("GPU torch 2.9.0+cu128 (CUDA build) on NVIDIA H100") for d in roles.values()), roles


def test_a_driver_too_old_for_the_build_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    roles = _torch_roles(monkeypatch, "2.10.0+cu130", (12, 8))
    assert all(d.startswith("CPU") and "update the driver" in d for d in roles.values()), roles


def test_a_cpu_build_cannot_use_the_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    roles = _torch_roles(monkeypatch, "2.13.0+cpu", (13, 0))
    assert all(d == "CPU torch 2.13.0+cpu is not a CUDA build" for d in roles.values()), roles
