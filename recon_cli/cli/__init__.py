"""The Typer CLI (`recon`): a thin layer that parses options and calls library functions.

Each command lives in its own module with a ``register(app)`` function; only this layer may
import ``train`` and ``export``.
"""
