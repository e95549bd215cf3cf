"""Evaluation: metrics, label sets, cohort tables, figures and QC panels."""
