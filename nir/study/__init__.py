"""Cohort support: subject discovery, workflow methods and the synthetic demo cohort."""
