"""The NIR engine: parameters, encodings, fields, samplers, losses, fitting and inference."""
