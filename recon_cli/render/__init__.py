"""Camera, normals, SH lighting, the pure-PyTorch rasteriser and the differentiable renderer.

Torch-free here: :mod:`~recon_cli.render.camera`, :mod:`~recon_cli.render.normals` and
:mod:`~recon_cli.render.lighting` (NumPy or torch), :mod:`~recon_cli.render.meshgen`.
:mod:`~recon_cli.render.rasterize` and :mod:`~recon_cli.render.renderer` need torch; import them
directly (this package does not import torch).
"""
