"""Task-aware quality: how much a user's own model changes its answer on the decoded image.

``spec`` (the sidecar), ``model`` (safe loading, tiling, batched prediction) and
``metrics`` (agreement, mean IoU, relative L1) are the metric family; ``train`` trains
the example model shipped in ``models/``.  Nothing here imports torch at import time.
"""
