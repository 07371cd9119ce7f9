"""Training the classifier in PyTorch (needs `pip install .[train]`).

Builds on `runtime` (preprocessing, metrics); `runtime` never imports from here.
"""
