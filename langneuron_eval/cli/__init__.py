"""The ``langneuron`` command line."""
