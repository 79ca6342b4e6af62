"""Composition of the mails the pipeline sends, and address checks."""
