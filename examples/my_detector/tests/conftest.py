# The tiny model, corpus and statistics fixtures that langneuron-eval ships for detector packages.
pytest_plugins = ["langneuron_eval.testing_fixtures"]
