from export_pipeline.cli import main

main()
