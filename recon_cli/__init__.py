"""recon: weakly supervised 3D face reconstruction, runtime package.

Importing this package (and its NumPy/ONNX paths) must not import torch: edge devices run the
inference path with numpy + onnxruntime + mediapipe + opencv only. Modules that need torch
import it themselves.
"""

__version__ = "0.1.0"
