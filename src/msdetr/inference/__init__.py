"""Inference on arbitrary images: finding files, reading and preprocessing them,
running batches, drawing and writing results, and candidate-box pictures."""
