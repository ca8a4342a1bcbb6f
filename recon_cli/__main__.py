from recon_cli.cli.app import main

main()
