"""Dynamic INT8: weights int8, activations quantized on the fly (Linear, LSTM), with a weights-only-loadable LSTM."""

from __future__ import annotations

import torch
from torch import nn
from torch.ao import quantization as tq
from torch.ao.nn.quantized import dynamic as nnqd

from compressflow.errors import CompressflowError

__all__ = ["PortableDynamicLSTM", "quantize_dynamic", "DYNAMIC_LAYERS"]

DYNAMIC_LAYERS = {"Linear": nn.Linear, "LSTM": nn.LSTM}


class _PlainPackedParameter(nnqd.modules.rnn.PackedParameter):
    """Holds an LSTM cell's packed weights but saves nothing (the LSTM saves them as qint8 tensors)."""

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        pass

    def _load_from_state_dict(self, *args, **kwargs):
        pass


class PortableDynamicLSTM(nnqd.LSTM):
    """Dynamic INT8 LSTM whose state dict holds qint8 tensors instead of TorchScript objects.

    The stock module saves ``torch.classes`` cell params, which ``weights_only=True`` refuses.
    """

    @classmethod
    def adopt(cls, module: nnqd.LSTM) -> PortableDynamicLSTM:
        module.__class__ = cls
        for child in module._all_weight_values:
            child.__class__ = _PlainPackedParameter
        return module

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        wb = self._weight_bias()
        for group in ("weight", "bias"):
            for key, value in wb[group].items():
                destination[prefix + key] = value

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        own = self._weight_bias()
        keys = [k for g in ("weight", "bias") for k in own[g]]
        missing_keys.extend(prefix + k for k in keys if prefix + k not in state_dict)
        if all(prefix + k in state_dict for k in keys):
            self.set_weight_bias({k: state_dict[prefix + k] for k in keys})
            for child in self._all_weight_values:
                child.__class__ = _PlainPackedParameter


def quantize_dynamic(model: nn.Module, dtype: str = "qint8", layer_types=("Linear", "LSTM")) -> tuple[nn.Module, list[str]]:
    if dtype != "qint8":
        raise CompressflowError(f"dynamic dtype '{dtype}'", "use dtype: qint8")
    kinds = tuple(DYNAMIC_LAYERS[t] for t in layer_types)
    names = [n for n, m in model.named_modules() if isinstance(m, kinds)]
    if not names:
        raise CompressflowError(
            f"the model has no {'/'.join(layer_types)} layers for dynamic quantization", "drop this dynamic variant for this model"
        )
    q = tq.quantize_dynamic(model.eval(), {DYNAMIC_LAYERS[t] for t in layer_types}, dtype=torch.qint8)
    for m in q.modules():
        if isinstance(m, nnqd.LSTM):
            PortableDynamicLSTM.adopt(m)
    return q, names
