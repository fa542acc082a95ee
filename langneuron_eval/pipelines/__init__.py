"""Whole jobs built from the layers below: measurements, the detector battery, the demo, demo training."""
