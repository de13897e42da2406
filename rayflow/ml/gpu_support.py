"""Which install set is present (CPU or CUDA) and whether each analysis role can use a GPU.

Asked by ``rayflow doctor`` and the GPU benchmark. Each answer names the library the role
needs on a GPU and why it cannot use one: faster-whisper's CTranslate2 4.x loads the CUDA 12
cuBLAS (``libcublas.so.12``), which CUDA 13 torch does not bring (the ``gpu`` extra installs
``nvidia-cublas-cu12``); on-screen text (ONNX) needs onnxruntime-gpu's
``CUDAExecutionProvider``; torch roles (shots' TransNetV2, the face SSD's torch port, the
text and image encoders) need a CUDA build of torch; NVDEC decode needs PyNvVideoCodec.

Cheap on purpose: NVML answers first (~10 ms); torch is never imported (its roles are
judged from its build, package metadata, against the driver's CUDA version from NVML),
only ctranslate2 and onnxruntime, and only when a GPU is present.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.metadata
import importlib.util
import re
from dataclasses import dataclass
from typing import Literal

InstallSet = Literal["cpu", "cuda", "mixed", "none"]


@dataclass(frozen=True)
class RoleGpu:
    """Whether one role can run on the GPU here, and why not when it cannot."""

    role: str
    library: str
    usable: bool
    detail: str


def nvidia_gpus() -> list[str]:
    """Names of the NVIDIA GPUs NVML sees; empty without a driver (NVMLError is the answer)."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return []
    try:
        names = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i))
            names.append(name.decode() if isinstance(name, bytes) else str(name))
        return names
    finally:
        with contextlib.suppress(Exception):  # shutting NVML down fails only if init half-worked
            pynvml.nvmlShutdown()


def torch_build() -> str:
    """``2.13.0+cpu`` style version string of the installed torch, without importing it."""
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def install_set() -> InstallSet:
    """``cpu`` (CPU torch, no CUDA libraries), ``cuda`` (CUDA torch + cuBLAS 12 + onnxruntime-gpu)
    or ``mixed`` (some of the CUDA set): read from package metadata, nothing imported."""
    torch = torch_build()
    if torch == "not installed":
        return "none"
    cuda_parts = [_installed("nvidia-cublas-cu12"), _installed("onnxruntime-gpu"), "+cpu" not in torch]
    if all(cuda_parts):
        return "cuda"
    return "cpu" if not any(cuda_parts) else "mixed"


def driver_cuda() -> tuple[int, int] | None:
    """The newest CUDA version the NVIDIA driver supports (NVML), e.g. ``(12, 8)``; None without one."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        version = int(pynvml.nvmlSystemGetCudaDriverVersion())  # e.g. 12080
        return version // 1000, version % 1000 // 10
    except Exception:
        return None
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def role_support() -> list[RoleGpu]:
    """Per role: can it use the GPU on this machine? Without a GPU every answer says so."""
    gpus = nvidia_gpus()
    if not gpus:
        return [RoleGpu(role, lib, False, "no NVIDIA GPU (NVML)") for role, lib in _ROLES]
    driver = driver_cuda()
    return [_torch_role("shots", "torch (TransNetV2)", gpus[0], driver), _speech(), _onnx("screen_text"),
            _torch_role("faces", "torch (ResNet-10 SSD port)", gpus[0], driver),
            _torch_role("embed", "torch (sentence-transformers)", gpus[0], driver), _nvdec()]


_ROLES = [("shots", "torch (TransNetV2)"), ("speech", "ctranslate2 + cuBLAS 12"),
          ("screen_text", "onnxruntime-gpu"), ("faces", "torch (ResNet-10 SSD port)"),
          ("embed", "torch (sentence-transformers)"), ("decode", "PyNvVideoCodec (NVDEC)")]


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.version(dist)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def build_cuda(build: str) -> tuple[int, int] | None:
    """The CUDA version a torch build names (``2.9.0+cu128`` -> ``(12, 8)``); None when it names none."""
    match = re.search(r"\+cu(\d+?)(\d)$", build)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _torch_role(role: str, library: str, gpu: str, driver: tuple[int, int] | None) -> RoleGpu:
    """From torch's package metadata and NVML, without importing torch (~2 s of CPU): a CUDA
    build whose CUDA major version the driver supports can use ``gpu``."""
    build = torch_build()
    local = build.partition("+")[2]
    if build == "not installed" or (local and not local.startswith("cu")):
        return RoleGpu(role, library, False, f"torch {build} is not a CUDA build")
    cuda = build_cuda(build)
    if cuda and driver and driver[0] < cuda[0]:
        return RoleGpu(role, library, False, f"torch {build} needs CUDA {cuda[0]}.{cuda[1]}; the driver "
                                             f"supports CUDA {driver[0]}.{driver[1]} (NVML): update the driver")
    supports = f", driver supports CUDA {driver[0]}.{driver[1]}" if driver else ""
    return RoleGpu(role, library, True, f"torch {build} (CUDA build) on {gpu}{supports}")


def _speech() -> RoleGpu:
    library = "ctranslate2 + cuBLAS 12"
    try:
        import ctranslate2
    except ImportError:
        return RoleGpu("speech", library, False, "ctranslate2 is not installed")
    if ctranslate2.get_cuda_device_count() < 1:
        return RoleGpu("speech", library, False, "ctranslate2 was built without CUDA or sees no GPU")
    try:
        ctypes.CDLL("libcublas.so.12")
    except OSError:
        if not preload_pip_cublas():
            return RoleGpu("speech", library, False,
                           "libcublas.so.12 not found: install the gpu extra (nvidia-cublas-cu12)")
    return RoleGpu("speech", library, True, f"ctranslate2 {ctranslate2.__version__} with cuBLAS 12")


def preload_pip_cublas() -> bool:
    """Load ``libcublas.so.12`` from the ``nvidia-cublas-cu12`` wheel (not on the loader path)."""
    try:
        spec = importlib.util.find_spec("nvidia.cublas")
    except ModuleNotFoundError:  # no ``nvidia`` namespace at all (no NVIDIA wheel installed)
        return False
    if spec is None or not spec.submodule_search_locations:
        return False
    for folder in spec.submodule_search_locations:
        for name in ("libcublasLt.so.12", "libcublas.so.12"):
            try:
                ctypes.CDLL(f"{folder}/lib/{name}", mode=ctypes.RTLD_GLOBAL)
            except OSError:
                break
        else:
            return True
    return False


def _onnx(role: str) -> RoleGpu:
    try:
        import onnxruntime
    except ImportError:
        return RoleGpu(role, "onnxruntime-gpu", False, "onnxruntime is not installed")
    providers = onnxruntime.get_available_providers()
    if "CUDAExecutionProvider" in providers:
        return RoleGpu(role, "onnxruntime-gpu", True, f"onnxruntime {onnxruntime.__version__}: CUDA provider")
    return RoleGpu(role, "onnxruntime-gpu", False,
                   f"onnxruntime {onnxruntime.__version__} has no CUDA provider (install the gpu extra)")


def _nvdec() -> RoleGpu:
    if importlib.util.find_spec("PyNvVideoCodec") is None:
        return RoleGpu("decode", "PyNvVideoCodec (NVDEC)", False, "PyNvVideoCodec is not installed")
    return RoleGpu("decode", "PyNvVideoCodec (NVDEC)", True, "PyNvVideoCodec installed")
