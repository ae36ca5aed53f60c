"""The `vmdeck` command: a thin layer over the core (it parses, calls, prints)."""
