"""recon_cli.render"""
