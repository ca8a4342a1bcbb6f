"""Morphable models: the contract (:class:`MorphableModel`), the shipped default and importers."""

from recon_cli.morphable.model import FORMAT_VERSION, MorphableModel, load_default_model, load_model

__all__ = ["FORMAT_VERSION", "MorphableModel", "load_default_model", "load_model"]
