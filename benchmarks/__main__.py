"""`python -m benchmarks`: run every benchmark and print the table (benchmarks/run.py)."""

from benchmarks.run import main

raise SystemExit(main())
