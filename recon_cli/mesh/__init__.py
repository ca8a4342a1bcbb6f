"""Mesh utilities: topology/differential helpers and file writers (.obj, .ply). Torch-free."""
