"""Where a model runs: one module per runtime, each with its algorithms and the steps of its rules.

- :mod:`.pytorch`: eager PyTorch as a timed callable, and the precision a saved recipe runs in.
- :mod:`.onnx`: PyTorch -> ONNX export (checked, simplified when safe, parity-proven) and the ONNX
  Runtime CPU session every ONNX consumer opens.
- :mod:`.onnxruntime`: ONNX Runtime FP32 rows and static INT8 in QDQ format.
- :mod:`.openvino`: OpenVINO FP32 IR, NNCF INT8, and rows that record the precision really used.
- :mod:`.tensorrt`: TensorRT FP16/INT8 engines and their GPU rows (placeholders where it cannot run).

Every row carries the same keys as the PyTorch ``evaluate`` step (:func:`compressflow.evaluate.metrics`).
This package imports none of its modules, so a rule's code digest (:mod:`compressflow.codedigest`)
covers only the runtime its step uses: a change to TensorRT code does not rerun OpenVINO rows.
"""

__all__ = ["pytorch", "onnx", "onnxruntime", "openvino", "tensorrt"]
