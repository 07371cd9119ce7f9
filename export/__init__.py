"""Checkpoint -> ONNX (fp32, optionally int8) with a parity gate (needs `pip install .[train]`)."""
