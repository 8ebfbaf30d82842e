"""diffusion-sim: how migration-control policies spread between states.

An agent-based model (Mesa) of states adopting migration-control mechanisms from partners on
weighted networks, with a kernel batched over replicates (numpy and numba), YAML scenarios
and Parquet results.
"""

__version__ = "0.2.1"
