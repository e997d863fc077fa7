"""The ``fedrisk`` command line."""
