from kdumptool.cli.main import main

main()
