"""Writes of the funding app. Each function is keyword-only, runs in one transaction and audits itself."""
