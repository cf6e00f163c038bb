"""Pure functions behind ``neurodata.transforms``: representations, filters and augmentations."""
