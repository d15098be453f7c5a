"""Using a trained network on one's own images: restoring them, exporting the network.

:mod:`~hinas.deploy.restore` (``hinas restore``) and :mod:`~hinas.deploy.export` (TorchScript and
ONNX); both read the single-file form of a trained network, :mod:`hinas.space.network_file`.
"""
