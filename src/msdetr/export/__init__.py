"""Exporting a detector for deployment (ONNX)."""
