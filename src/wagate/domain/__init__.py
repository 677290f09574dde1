"""Pure business rules: no I/O, no clock reads, no framework imports."""
