"""What the processor can do fast: printed with every training run and benchmark, and the
one place bf16 autocast is decided.

bfloat16 autocast only pays where the CPU multiplies bf16 natively (AMX tiles on Intel
Sapphire Rapids and later, AVX-512 BF16 on AMD Zen 4 and later); elsewhere PyTorch
emulates it and an epoch gets slower, so "auto" turns it on only there (or on a GPU).
No torch here: the benchmarks read the flags without it.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

# The flags that decide the speed of fp32, int8 and bf16 kernels, in the order printed.
SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@dataclass(frozen=True)
class Cpu:
    model: str
    flags: frozenset[str]

    @classmethod
    def read(cls, cpuinfo: Path = Path("/proc/cpuinfo")) -> Cpu:
        try:
            text = cpuinfo.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return cls(platform.processor() or platform.machine(), frozenset())
        fields: dict[str, str] = {}
        for line in text.splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
        return cls(fields.get("model name", platform.machine()), frozenset(fields.get("flags", "").split()))

    @property
    def native_bf16(self) -> bool:
        return any(flag in self.flags for flag in BF16_FLAGS)

    def describe(self) -> str:
        shown = [flag for flag in SPEED_FLAGS if flag in self.flags]
        return f"{self.model} ({', '.join(shown) or 'none of ' + ', '.join(SPEED_FLAGS)})"


def use_bf16(setting: str, device_type: str, cpu: Cpu | None = None) -> bool:
    """The recipe's `bf16` ("auto", "on", "off") for this device."""
    if setting in ("on", "off"):
        return setting == "on"
    if device_type == "cuda":
        return True
    return (cpu or Cpu.read()).native_bf16
