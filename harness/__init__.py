"""Test harness: moto worlds, AWS behaviour moto lacks, pytest fixtures."""
