from cnncli.cli.main import main

main()
