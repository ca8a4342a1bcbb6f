"""recon_cli.backends"""
