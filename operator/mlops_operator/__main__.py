from mlops_operator.cli import main

main()
