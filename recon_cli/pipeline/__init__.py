"""recon_cli.pipeline"""
