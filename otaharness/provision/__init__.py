"""Provisioning tools: what an operator runs to prepare devices and roll out firmware."""
