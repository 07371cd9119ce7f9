"""Training the classifier in PyTorch (needs `pip install 'brain-tumor-edge[train]'`).

Builds on `runtime` (preprocessing, metrics); `runtime` never imports from here.
"""
