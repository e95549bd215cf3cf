"""Group statistics of a morphometry study: the GLM and its correction, voxelwise log-Jacobian
maps, per-structure volumes, and their figures."""
