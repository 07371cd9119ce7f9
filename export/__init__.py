"""Checkpoint -> ONNX (fp32, optionally int8) with a parity gate.

Needs the training extra: `pip install 'brain-tumor-edge[train]'`.
"""
