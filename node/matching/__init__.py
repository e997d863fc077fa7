"""A node's part in cross-site matching: one module per job, the protocol steps, the results.

Each job reads only the fields its purpose grants (the policy's purpose is the job's name),
turns the vault's identifiers into blind tokens, and decides from the slots the coordinator
returns which of this node's settlements to flag (:mod:`fedrisk.node.matching.steps`).
"""
