"""recon export: ONNX export, ONNX Runtime quantisation, TensorRT engines, parity checks, benchmarks."""
