"""Metrics and history (core layer): one bulk libvirt sample per interval, rates from two samples,
round-robin history files, threshold checks. The API serves these as Prometheus text and JSON."""
