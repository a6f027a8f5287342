"""Static qconfigs: the plain-data spec an artifact records, and the torch.ao objects built from it."""

from __future__ import annotations

import torch
from torch.ao import quantization as tq

from compressflow.errors import CompressflowError

__all__ = ["PercentileObserver", "qconfig_spec", "set_backend", "make_qconfig", "qconfig_mapping", "BACKENDS", "OBSERVERS", "ACTIVATIONS"]

BACKENDS = ("x86", "fbgemm", "qnnpack")
OBSERVERS = ("minmax", "moving_average", "histogram", "percentile")
ACTIVATIONS = ("affine", "symmetric")


class PercentileObserver(tq.HistogramObserver):
    """Histogram observer whose range is clipped to the given percentile of the observed values."""

    def __init__(self, percentile: float = 99.99, **kwargs):
        super().__init__(**kwargs)
        self.percentile = float(percentile)

    @torch.jit.export
    def calculate_qparams(self):
        total = self.histogram.sum()
        if total <= 0 or self.min_val == self.max_val:
            return super().calculate_qparams()
        cdf = torch.cumsum(self.histogram, 0) / total
        edges = torch.linspace(self.min_val.item(), self.max_val.item(), self.bins + 1)
        tail = (100.0 - self.percentile) / 100.0
        lo_bin = int(torch.searchsorted(cdf, torch.tensor(tail)).clamp(max=self.bins - 1))
        hi_bin = int(torch.searchsorted(cdf, torch.tensor(1.0 - tail)).clamp(max=self.bins - 1))
        lo, hi = min(edges[lo_bin].item(), 0.0), max(edges[hi_bin + 1].item(), 0.0)
        return self._calculate_qparams(torch.tensor(lo), torch.tensor(hi))


def qconfig_spec(
    backend: str = "x86", observer: str = "histogram", activation: str = "affine", per_channel: bool = True, percentile: float = 99.99
) -> dict:
    """The plain-data description of a static qconfig (what the artifact records)."""
    _check_choice("backend", backend, BACKENDS)
    _check_choice("observer", observer, OBSERVERS)
    _check_choice("activation", activation, ACTIVATIONS)
    if not 50.0 < float(percentile) <= 100.0:
        raise CompressflowError(f"percentile={percentile}", "use a percentile in (50, 100], e.g. 99.99")
    return {
        "backend": backend,
        "observer": observer,
        "activation": activation,
        "per_channel": bool(per_channel),
        "percentile": float(percentile),
        # fbgemm/x86 kernels may overflow 16-bit accumulators without VNNI, so their default qconfigs use 7-bit
        # activations; torch cannot reduce the range of symmetric quint8, which then uses all 8 bits.
        "reduce_range": backend in ("x86", "fbgemm") and activation == "affine",
        "activation_dtype": "quint8",
        "weight_dtype": "qint8",
    }


def _check_choice(what, value, allowed):
    if value not in allowed:
        raise CompressflowError(f"unknown {what} '{value}'", f"use one of: {', '.join(allowed)}")


def set_backend(backend: str) -> None:
    if backend not in torch.backends.quantized.supported_engines:
        raise CompressflowError(
            f"quantized backend '{backend}' is not available in this torch build",
            f"use one of: {', '.join(e for e in torch.backends.quantized.supported_engines if e != 'none')}",
        )
    torch.backends.quantized.engine = backend


def make_qconfig(spec: dict, qat: bool = False) -> tq.QConfig:
    act_qscheme = torch.per_tensor_symmetric if spec["activation"] == "symmetric" else torch.per_tensor_affine
    rr = spec["reduce_range"]
    if qat:
        act = tq.FusedMovingAvgObsFakeQuantize.with_args(
            observer=tq.MovingAverageMinMaxObserver, quant_min=0, quant_max=255, dtype=torch.quint8, qscheme=act_qscheme, reduce_range=rr
        )
        weight = tq.default_fused_per_channel_wt_fake_quant if spec["per_channel"] else tq.default_fused_wt_fake_quant
        return tq.QConfig(activation=act, weight=weight)
    kwargs = {"dtype": torch.quint8, "qscheme": act_qscheme, "reduce_range": rr}
    act = {
        "minmax": tq.MinMaxObserver.with_args(**kwargs),
        "moving_average": tq.MovingAverageMinMaxObserver.with_args(**kwargs),
        "histogram": tq.HistogramObserver.with_args(**kwargs),
        "percentile": PercentileObserver.with_args(percentile=spec["percentile"], **kwargs),
    }[spec["observer"]]
    if spec["per_channel"]:
        weight = tq.PerChannelMinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
    else:
        weight = tq.MinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric)
    return tq.QConfig(activation=act, weight=weight)


def qconfig_mapping(spec: dict, fp32_layers=(), only_layers=None, qat: bool = False) -> tq.QConfigMapping:
    """Global qconfig, minus ``fp32_layers``; with ``only_layers`` nothing else is quantized."""
    qc = make_qconfig(spec, qat)
    mapping = tq.QConfigMapping()
    if only_layers is None:
        mapping.set_global(qc)
        for name in fp32_layers:
            mapping.set_module_name(name, None)
    else:
        mapping.set_global(None)
        for name in only_layers:
            mapping.set_module_name(name, qc)
    return mapping
