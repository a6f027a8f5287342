"""compressflow: compress a trained PyTorch CNN, measure every artifact, report honestly."""

from compressflow.errors import CompressflowError

__all__ = ["CompressflowError"]
__version__ = "0.1.0"
