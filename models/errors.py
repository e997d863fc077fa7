"""The exceptions of fedrisk's data layer.

Messages are safe to show: they name files, rows and fields, never a patient's identifier.
"""

from __future__ import annotations


class FedriskError(Exception):
    """Base of every error fedrisk raises on purpose."""


class KnowledgeBaseError(FedriskError):
    """A knowledge base folder is missing a file or holds a malformed value."""


class ContractError(FedriskError):
    """An input file does not follow data contract v1 as a whole (e.g. a missing column)."""


class NodeHomeError(FedriskError):
    """A node home is missing, incomplete or already initialised."""


class RulePackError(FedriskError):
    """A rule pack file is unreadable or sets a rule wrongly (the message names rule and field)."""
