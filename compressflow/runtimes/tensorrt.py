"""TensorRT engines from the exported ONNX file: FP16, and INT8 two ways, evaluated on the GPU.

INT8 (1) "explicit": a symmetric INT8 Q/DQ ONNX model (ONNX Runtime's quantizer, S8S8, zero
points 0 as TensorRT requires) built as a strongly typed network, the only INT8 path left in
TensorRT 11. INT8 (2) "implicit": ``IInt8EntropyCalibrator2`` over the calibration split with a
calibration cache, only where the installed TensorRT still has it (10.x); otherwise the row says
why it was skipped. Buffers are torch CUDA tensors, so no pycuda is needed.

With ``tensorrt.mode: auto`` a machine without CUDA or without the ``tensorrt`` module still
runs the rules: they write a metrics file whose numbers are null and whose ``skipped`` says why.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from compressflow import data, files, sysinfo
from compressflow.errors import CompressflowError

__all__ = [
    "PRECISIONS",
    "NULL_METRICS",
    "unavailable",
    "version",
    "has_implicit_calibrator",
    "build",
    "Engine",
    "predict",
    "skipped_metrics",
]

PRECISIONS = ("fp16", "int8", "int8-calib")
NULL_METRICS = (
    "top1",
    "top5",
    "n_test",
    "size_mb",
    "per_class_top1",
    "latency_ms_p50",
    "latency_ms_p90",
    "throughput_ips",
    "top1_agreement_vs_parent",
    "mse_vs_parent",
    "max_abs_diff_vs_parent",
    "cosine_vs_parent",
    "parent_latency_ms_p50",
    "speedup_vs_parent",
)


def unavailable() -> str | None:
    """Why TensorRT cannot run here, or None when it can."""
    if not torch.cuda.is_available():
        return "no CUDA device"
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "no tensorrt module (install envs/tensorrt.yaml)"
    return None


def version() -> str:
    import tensorrt as trt

    return trt.__version__


def has_implicit_calibrator() -> bool:
    """``IInt8EntropyCalibrator2`` exists up to TensorRT 10.x (deprecated there, removed in 11)."""
    import tensorrt as trt

    return hasattr(trt, "IInt8EntropyCalibrator2") and int(trt.__version__.split(".")[0]) <= 10


def _logger(path):
    import tensorrt as trt

    class FileLogger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.file = open(path, "w", buffering=1)  # noqa: SIM115 (closed by build())

        def log(self, severity, msg):
            self.file.write(f"[{getattr(severity, 'name', severity)}] {msg}\n")

    return FileLogger()


def _calibrator(split: dict, batch: int, cache_path):
    import tensorrt as trt

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            n = len(split["y"]) // batch * batch
            self.stream = iter(data.batches(split, batch, limit=n))  # streamed: one batch on the GPU at a time
            self.current = None

        def get_batch_size(self):
            return batch

        def get_batch(self, names):
            nxt = next(self.stream, None)
            if nxt is None:
                return None
            self.current = nxt[0].cuda().contiguous()  # kept referenced until the next call
            return [int(self.current.data_ptr())]

        def read_calibration_cache(self):
            return Path(cache_path).read_bytes() if Path(cache_path).is_file() and Path(cache_path).stat().st_size else None

        def write_calibration_cache(self, cache):
            with files.atomic_path(cache_path) as tmp:
                tmp.write_bytes(bytes(cache))

    return EntropyCalibrator()


def build(
    onnx_path,
    engine_path,
    *,
    precision: str,
    batch: dict,
    data_size: int,
    latency_size: int,
    timing_cache,
    build_log,
    calib: dict | None = None,
    calib_cache=None,
    workspace_gb: float = 2.0,
) -> dict:
    """Parse the ONNX file, add a dynamic batch (and H/W) profile, build and serialise the engine."""
    import tensorrt as trt

    if precision not in PRECISIONS:
        raise CompressflowError(f"TensorRT precision '{precision}' is unknown", f"use one of: {', '.join(PRECISIONS)}")
    logger = _logger(build_log)
    try:
        builder = trt.Builder(logger)
        strongly_typed = precision == "int8"
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise CompressflowError(
                f"TensorRT cannot parse '{onnx_path}' ({errs[:300]})", "check the ONNX opset (deploy.opset) against this TensorRT version"
            )
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * 2**30))
        cache_bytes = Path(timing_cache).read_bytes() if Path(timing_cache).is_file() else b""
        config.set_timing_cache(config.create_timing_cache(cache_bytes), False)
        name = network.get_input(0).name
        lo, hi = min(data_size, latency_size), max(data_size, latency_size)
        shapes = ((batch["min_batch"], 3, lo, lo), (batch["opt_batch"], 3, latency_size, latency_size), (batch["max_batch"], 3, hi, hi))
        profile = builder.create_optimization_profile()
        profile.set_shape(name, *shapes)
        config.add_optimization_profile(profile)
        info = {
            "tensorrt": trt.__version__,
            "precision": precision,
            "profile": {"input": name, "min": shapes[0], "opt": shapes[1], "max": shapes[2]},
            "strongly_typed": strongly_typed,
            "onnx": str(onnx_path),
        }
        if precision == "fp16":
            if not hasattr(trt.BuilderFlag, "FP16"):
                raise CompressflowError(
                    f"TensorRT {trt.__version__} has no weakly typed FP16 flag", "use the pinned TensorRT 10.x from envs/tensorrt.yaml"
                )
            config.set_flag(trt.BuilderFlag.FP16)
        elif precision == "int8":
            info["int8_method"] = "explicit Q/DQ (strongly typed network)"
        else:
            if not has_implicit_calibrator():
                raise CompressflowError(
                    f"TensorRT {trt.__version__} has no IInt8EntropyCalibrator2", "use the explicit Q/DQ INT8 engine (tensorrt-int8)"
                )
            cb = batch["calib_batch"]
            config.set_flag(trt.BuilderFlag.INT8)
            config.set_flag(trt.BuilderFlag.FP16)
            config.int8_calibrator = _calibrator(calib, cb, calib_cache)
            cal_profile = builder.create_optimization_profile()
            cal_profile.set_shape(name, (cb, 3, data_size, data_size), (cb, 3, data_size, data_size), (cb, 3, data_size, data_size))
            config.set_calibration_profile(cal_profile)
            info["int8_method"] = "implicit IInt8EntropyCalibrator2 (+FP16 fallback)"
            info["calib_batch"] = cb
        t0 = time.perf_counter()
        serialized = builder.build_serialized_network(network, config)
        info["build_s"] = time.perf_counter() - t0
        if serialized is None:
            raise CompressflowError(
                f"TensorRT failed to build the {precision} engine from '{onnx_path}'", f"read the build log {build_log}"
            )
        with files.atomic_path(engine_path) as tmp:
            tmp.write_bytes(bytes(serialized))
        with files.atomic_path(timing_cache) as tmp:
            tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
        return info
    finally:
        logger.file.close()


class Engine:
    """A deserialised engine with named I/O tensors; call it with a CUDA tensor, get a CUDA tensor."""

    def __init__(self, path):
        import tensorrt as trt

        self._trt = trt
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.engine = trt.Runtime(self.logger).deserialize_cuda_engine(Path(path).read_bytes())
        if self.engine is None:
            raise CompressflowError(f"TensorRT cannot load engine '{path}'", "rebuild it with this TensorRT version and GPU")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.stream = torch.cuda.Stream()

    def _dtype(self, name):
        trt = self._trt
        types = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int8: torch.int8, trt.int32: torch.int32, trt.bool: torch.bool}
        return types[self.engine.get_tensor_dtype(name)]

    def __call__(self, x: torch.Tensor, sync: bool = True) -> torch.Tensor:
        name = self.inputs[0]
        x = x.to(device="cuda", dtype=self._dtype(name)).contiguous()
        self.context.set_input_shape(name, tuple(x.shape))
        self.context.set_tensor_address(name, x.data_ptr())
        out_name = self.outputs[0]
        out = torch.empty(tuple(self.context.get_tensor_shape(out_name)), dtype=self._dtype(out_name), device="cuda")
        self.context.set_tensor_address(out_name, out.data_ptr())
        self.stream.wait_stream(torch.cuda.current_stream())
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise CompressflowError("TensorRT execute_async_v3 failed", "read the job log; rebuild the engine")
        if sync:
            self.stream.synchronize()
        return out


def predict(engine: Engine, split: dict, batch_size: int) -> torch.Tensor:
    return torch.cat([engine(x).float().cpu() for x, _ in data.batches(split, batch_size)])


def timed_on_gpu(fn, x_gpu):
    def run(_):
        fn(x_gpu)
        torch.cuda.synchronize()

    return run


def skipped_metrics(runtime: str, reason: str, threads: int, latency: dict) -> dict:
    return {
        "runtime": runtime,
        "skipped": reason,
        "note": f"skipped: {reason}",
        "precision": None,
        "threads": threads,
        "latency_input": latency["input_size"],
        "latency_batch": 1,
        "params": None,
        **dict.fromkeys(NULL_METRICS),
        **sysinfo.cpu(),
    }


# --- workflow steps ----------------------------------------------------------------------------------------------------


def skip_or_fail(mode: str, reason: str, what: str) -> None:
    if mode == "on":
        raise CompressflowError(
            f"deploy.tensorrt.mode is 'on' but {reason}",
            "run on a machine with an NVIDIA GPU and envs/tensorrt.yaml, or set mode: auto/off",
        )
    print(f"TensorRT {what} skipped: {reason} (deploy.tensorrt.mode: auto)", file=sys.stderr)
