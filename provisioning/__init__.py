"""Declares Amplitude's Kinesis cohort destination: stream, trusted role, least-privilege policy."""
