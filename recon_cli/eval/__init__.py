"""recon_cli.eval"""
