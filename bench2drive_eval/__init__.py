"""Bench2Drive harness: route files, official metrics, reports and a crash-proof multi-GPU launcher."""
