"""The sandbox: local engine, two-account moto world, what moto lacks, faults, proof, fixtures."""
