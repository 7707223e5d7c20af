"""hepcat: a metadata catalogue for high-energy-physics datasets.

This package holds the command line, which wires the catalogue, the task
server, the ingesters, the skim engine and the web surfaces together.
"""
