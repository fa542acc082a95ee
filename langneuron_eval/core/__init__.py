"""The mechanics every other layer builds on: model sites, hooks, recording, statistics, neuron files, interventions."""
