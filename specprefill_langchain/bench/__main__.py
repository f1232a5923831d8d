"""Lets ``python -m specprefill_langchain.bench fidelity --json`` run the benchmark CLI."""

from specprefill_langchain.bench.cli import main

raise SystemExit(main())
