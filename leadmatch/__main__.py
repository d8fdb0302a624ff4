from leadmatch.cli.app import main

main()
