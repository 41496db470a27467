from loom.cli.main import main

main()
