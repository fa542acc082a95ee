"""The lm-eval face: the ``langneuron`` model, the plugin, evaluation calls, task metrics, results files."""
