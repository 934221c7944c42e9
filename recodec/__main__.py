from recodec.cli import main

main()
