"""bench: the harness for minute-scale pose-guided human animation (contract, registry, run store, metrics, tables)."""

__version__ = "0.1.0"
