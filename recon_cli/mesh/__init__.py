"""recon_cli.mesh"""
