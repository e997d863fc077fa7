"""The rule library (规则库): the catalogue of rules, the rule pack that sets them, the engine."""
