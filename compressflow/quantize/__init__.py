"""INT8 quantization, one concern per module: ``torch.ao.quantization`` FX graph mode (deprecated) and
its successor PT2E (:mod:`.pt2e`, torchao); :mod:`.units` and :mod:`.mixed` serve both and import no torch.ao.

Static paths use prepare_fx / convert_fx / prepare_qat_fx. FX graph mode is deprecated in torch 2.14
but works on ResNet18 / MobileNetV2 here, fuses Conv+BN+ReLU itself, and its converted modules run
on the stock x86/fbgemm/qnnpack kernels; the warning is left visible on purpose.

Saved artifacts are state dicts plus a plain-data ``quantize`` transform; :mod:`.rebuild` replays the
same prepare/convert on an example input of the recorded size, so files load with ``weights_only=True``.

This package imports none of its modules, so a rule's code digest (:mod:`compressflow.codedigest`)
covers only the modules its step imports: a change to static PTQ reruns PTQ variants, not QAT.
"""

__all__ = ["units", "qconfig", "graph", "error", "dynamic", "rebuild", "static", "qat", "mixed", "pt2e"]
