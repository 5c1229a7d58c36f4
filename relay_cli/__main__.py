from relay_cli.cli import main

main()
