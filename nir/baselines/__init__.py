"""Baseline registration methods run beside NIR for comparison (ANTs SyN via antspyx)."""
