"""Preprocessing of raw T1w MRIs: canonical orientation, brain extraction, bias correction,
intensity normalisation and affine alignment into a common template grid."""

from nir.preprocess.pipeline import preprocess_subject

__all__ = ["preprocess_subject"]
