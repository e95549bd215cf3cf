"""Spatial I/O and geometry: NIfTI files, frames, displacement fields, warping, Jacobians."""
