"""recon_cli.face"""
