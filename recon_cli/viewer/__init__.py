"""recon_cli.viewer"""
