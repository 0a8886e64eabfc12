"""Moves cohort data: snapshots in, Amplitude's messages onto Kinesis, membership back out."""
