"""nir: neural-field image registration (NIR) for brain-MRI cohort studies."""

__version__ = "0.1.0"
