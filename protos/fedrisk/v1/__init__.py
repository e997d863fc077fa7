"""fedrisk.v1: PreCheck (precheck.proto) and its generated stubs."""
