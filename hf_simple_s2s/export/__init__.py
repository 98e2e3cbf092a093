"""Deployment: the model's encoder and decoding step exported to ONNX and run by onnxruntime."""
